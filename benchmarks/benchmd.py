"""BENCHMARKS.md is shared: each benchmark script owns one `## Title` section and rewrites only that.

Scripts run as `python benchmarks/bench_x.py`, so this directory is on sys.path
and they `import benchmd`.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_NEXT_SECTION = re.compile(r"^## ", re.M)
_SUBSECTION = re.compile(r"^### ", re.M)


def replace_section(title: str, text: str, path: Path = ROOT / "BENCHMARKS.md", keep_subsections: bool = False) -> Path:
    """Put `text` in place of the `## {title}` section of `path` (appended when absent); returns `path`.

    `text` must start with its `## {title}` heading so that the next run finds it again.
    A section runs to the next `## ` heading (its `###` subsections stay inside). Each
    section ends with one newline and a blank line separates it from the next, so
    re-running a benchmark never drifts the layout of the sections around it.
    `keep_subsections`: the section's `###` subsections (hand-written studies beside the script's
    table) stay after the new text instead of being replaced with it.
    """
    heading = f"## {title}"
    if text.splitlines()[:1] != [heading]:
        raise ValueError(f"section text must start with the line {heading!r}; it starts with {text[:60]!r}")
    block = text.rstrip("\n") + "\n"
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    found = re.search(rf"^{re.escape(heading)}[ \t]*$", current, re.M)
    if found is None:
        updated = current.rstrip("\n") + "\n\n" + block
    else:
        following = _NEXT_SECTION.search(current, found.end())
        end = following.start() if following else len(current)
        sub = _SUBSECTION.search(current, found.end(), end) if keep_subsections else None
        if sub is not None:
            block += "\n" + current[sub.start():end].rstrip("\n") + "\n"
        rest = "\n" + current[following.start():] if following else ""
        updated = current[:found.start()] + block + rest
    path.write_text(updated)
    return path
