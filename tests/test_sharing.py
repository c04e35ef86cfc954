"""The store in other tools (README snippet, `frame`), the offline HTML report, and the CLI conventions."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import cli
from featurestore.frame import LINEAGE_KEY, read_lineage
from featurestore.ingest_folder import MANIFEST_OPTIONAL, MANIFEST_REQUIRED
from featurestore.join import LABEL_COLUMNS
from featurestore.schemas import SEGMENTS
from featurestore.store import STORE_ENV
from tinydata import build_tiny_store, write_feature_table

README = Path(__file__).resolve().parent.parent / "README.md"
runner = CliRunner()


@pytest.fixture
def no_store_env(monkeypatch):
    """`--store` before the command sets $CHROMATIC_STORE in-process; undo it after each test."""
    monkeypatch.delenv(STORE_ENV, raising=False)


def invoke(*args: str):
    result = runner.invoke(cli.app, list(args))
    return result.exit_code, result.output


def readme_block(heading: str, index: int = 0) -> str:
    section = README.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)[index]


def test_readme_reads_segments_and_a_feature_table_with_polars_and_duckdb(tmp_path, monkeypatch):
    store = build_tiny_store(tmp_path / "store")
    write_feature_table(store, "audio", "clap:v1", "has_audio", seed=1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_block("The store in other tools"), "README.md", "exec"), namespace)
    segments = {r["segment_id"]: r for r in store.read(SEGMENTS).to_pylist()}
    vectors = {r["segment_id"]: r["vector"] for r in store.read("audio.clap.v1").to_pylist() if r["present"]}
    green = namespace["green"]
    assert sorted(green["segment_id"].to_list()) == sorted(
        s for s in vectors if segments[s]["color"] == "Green")
    for row in green.iter_rows(named=True):
        np.testing.assert_allclose(row["vector"], vectors[row["segment_id"]], rtol=1e-6)
    counts = dict(namespace["per_colour"].iter_rows())
    expected = {}
    for sid in vectors:
        expected[segments[sid]["color"]] = expected.get(segments[sid]["color"], 0) + 1
    assert counts == expected


def test_frame_writes_the_training_join_with_masks_and_lineage(tmp_path, no_store_env):
    store = build_tiny_store(tmp_path / "store")
    write_feature_table(store, "audio", "clap:v1", "has_audio", seed=1)
    write_feature_table(store, "lyrics", "minilm:v1", "has_lyrics", seed=2)
    out = tmp_path / "out" / "train.parquet"
    code, output = invoke("--store", str(tmp_path / "store"), "frame", "--audio", "clap:v1",
                          "--lyrics", "minilm:v1", "--out", str(out), "--json")
    assert code == 0, output
    assert json.loads(output)["rows"] == store.count(SEGMENTS)
    frame = pq.read_table(out)
    assert {*LABEL_COLUMNS, "audio", "audio_mask", "lyrics", "lyrics_mask"} <= set(frame.column_names)
    segments = {r["segment_id"]: r for r in store.read(SEGMENTS).to_pylist()}
    stored = {r["segment_id"]: r["vector"] for r in store.read("audio.clap.v1").to_pylist()}
    for row in frame.to_pylist():
        assert row["color"] == segments[row["segment_id"]]["color"]
        assert row["audio_mask"] == segments[row["segment_id"]]["has_audio"] == (row["audio"] is not None)
        if row["audio_mask"]:
            np.testing.assert_allclose(row["audio"], stored[row["segment_id"]], rtol=1e-6)
        assert row["lyrics_mask"] == segments[row["segment_id"]]["has_lyrics"]
    lineage = read_lineage(out)
    tables = (SEGMENTS, "audio.clap.v1", "lyrics.minilm.v1")
    assert lineage["lance_versions"] == {table: store.version(table) for table in tables}
    assert lineage["inputs"]["audio"]["tables"][0]["fingerprint"] == "test-audio.clap.v1-1"
    assert LINEAGE_KEY in pq.read_schema(out).metadata
    code, output = invoke("frame", "--store", str(tmp_path / "store"), "--audio", "clap:v9", "--out", str(out))
    assert code == 2 and "audio.clap.v9" in output


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        self.links += [value for name, value in attrs if name in ("src", "href", "action") and value]


def test_html_report_is_self_contained(explorer_store, tmp_path, no_store_env):
    store, runs = explorer_store
    out = tmp_path / "report.html"
    code, output = invoke("--store", store.uri, "report", runs[1], "--html", str(out))
    assert code == 0 and str(out) in output.replace("\n", "")
    page = out.read_text()
    parser = _Links()
    parser.feed(page)
    assert parser.links == [] and parser.scripts == 2  # plotly.js inlined, then the figures
    assert "Plotly.newPlot('fig-color_confusion'" in page and runs[1] in page
    assert len(page) > 1_000_000  # plotly.js itself travels in the file
    code, output = invoke("--store", store.uri, "report", "run-nope", "--html", str(out))
    assert code == 2 and "no model run 'run-nope'" in output


def test_version_store_before_the_command_and_ingest_help(tmp_path, no_store_env):
    code, output = invoke("--version")
    assert code == 0 and re.fullmatch(r"chromatic-store \S+\n", output)
    build_tiny_store(tmp_path / "store")
    code, before = invoke("--store", str(tmp_path / "store"), "info", "--json")
    assert code == 0 and json.loads(before)["uri"] == str((tmp_path / "store").resolve())
    code, after = invoke("info", "--store", str(tmp_path / "store"), "--json")
    assert code == 0 and json.loads(after) == json.loads(before)
    code, output = invoke("ingest", "--help")
    text = " ".join(output.split())
    assert code == 0 and all(column in text for column in (*MANIFEST_REQUIRED, *MANIFEST_OPTIONAL))
    readme = README.read_text()
    assert all(f"`{column}`" in readme for column in (*MANIFEST_REQUIRED, *MANIFEST_OPTIONAL))


def test_ingest_summary_names_segments_that_lost_a_modality(tmp_path, no_store_env):
    from test_ingest import write_folder

    write_folder(tmp_path / "songs")
    code, output = invoke("--store", str(tmp_path / "store"), "ingest", str(tmp_path / "songs"))
    text = " ".join(output.split())
    assert code == 0 and "e.g. fd lost audio" in text and "missing.wav" in text
    # Another store: a rejects file is named by the second, and the run above may share it.
    code, output = invoke("--store", str(tmp_path / "store2"), "ingest", str(tmp_path / "songs"), "--json")
    summary = json.loads(output)
    assert [(d["segment_id"], d["dropped"]) for d in summary["dropped_examples"]] == [("fd", "audio")]
    lines = [json.loads(line) for line in Path(summary["rejects_path"]).read_text().splitlines()]
    assert [(ln["segment_id"], ln.get("dropped"), ln.get("reason")) for ln in lines] == [
        ("fe", None, "unknown colour"), ("fd", "audio", None)]
