"""benchmarks/benchmd.py: each script rewrites its own BENCHMARKS.md section and nothing else."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from benchmd import replace_section  # noqa: E402

BEFORE = "# Benchmarks\n\n## A\n\nold table\n\n### study\n\nwritten by hand\n\n## C\n\nc\n"


def test_a_section_is_replaced_up_to_the_next_one(tmp_path):
    path = tmp_path / "B.md"
    path.write_text(BEFORE)
    replace_section("A", "## A\n\nnew table\n", path)
    assert path.read_text() == "# Benchmarks\n\n## A\n\nnew table\n\n## C\n\nc\n"
    replace_section("D", "## D\n\nd\n", path)
    assert path.read_text().endswith("## C\n\nc\n\n## D\n\nd\n")


def test_keep_subsections_rewrites_the_table_and_keeps_the_studies_under_it(tmp_path):
    path = tmp_path / "B.md"
    path.write_text(BEFORE)
    for _ in range(2):  # re-running never drifts the layout
        replace_section("A", "## A\n\nnew table\n", path, keep_subsections=True)
        assert path.read_text() == "# Benchmarks\n\n## A\n\nnew table\n\n### study\n\nwritten by hand\n\n## C\n\nc\n"
    path.write_text(BEFORE.split("\n## C")[0] + "\n")  # the last section of the file
    replace_section("A", "## A\n\nnew table\n", path, keep_subsections=True)
    assert path.read_text() == "# Benchmarks\n\n## A\n\nnew table\n\n### study\n\nwritten by hand\n"
