"""The encode job: tables, registry rows, statuses, immutability, resume, locks, strictness."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import fake_encoders
from encoders.errors import BadInputError, EncoderError
from encoders.job import EncodeConfig, plan_table, run_encode
from encoders.pipeline import Preparer
from encoders.registry import build_encoder
from featurestore.coverage import list_versions
from featurestore.errors import VersionConflictError, WriterLockedError
from featurestore.registry import get_encoder_record
from featurestore.schemas import MEDIA, MEDIA_SCHEMA, SEGMENTS
from featurestore.store import sql_quote

ROOT = Path(__file__).resolve().parent.parent


def encode(store, encoder="fake_audio", version="v1", **kwargs):
    kwargs.setdefault("workers", 0)
    return run_encode(store, EncodeConfig(encoder, version, **kwargs))


def rows_by_id(store, table) -> dict[str, dict]:
    return {r["segment_id"]: r for r in store.read(table).to_pylist()}


def segments_by_id(store) -> dict[str, dict]:
    return {r["segment_id"]: r for r in store.read(SEGMENTS).to_pylist()}


def break_media(store, segment_id, **changes) -> None:
    """Overwrite one media row (e.g. NaN audio, garbage MIDI) to make bad input."""
    row = store.read(MEDIA, where=f"segment_id = {sql_quote(segment_id)}").to_pylist()[0]
    store.upsert(MEDIA, pa.Table.from_pylist([{**row, **changes}], schema=MEDIA_SCHEMA))


def first_with(store, flag) -> str:
    return sorted(sid for sid, s in segments_by_id(store).items() if s[flag])[0]


def test_table_and_registry_row_match_segments(tiny_store):
    summary = encode(tiny_store)
    segments, rows = segments_by_id(tiny_store), rows_by_id(tiny_store, "audio.fake_audio.v1")
    assert rows.keys() == segments.keys() and tiny_store.count("audio.fake_audio.v1") == len(segments)
    for sid, row in rows.items():
        assert row["present"] == segments[sid]["has_audio"]
        assert (row["vector"] is None) == (not row["present"])
        assert row["status"] == (None if row["present"] else "absent")
    record = get_encoder_record(tiny_store, "audio.fake_audio.v1")
    n_audio = sum(s["has_audio"] for s in segments.values())
    assert (record.state, record.rows, record.present, record.absent, record.failed) == (
        "complete", len(segments), n_audio, len(segments) - n_audio, 0
    )
    table = summary.tables[0]
    assert (table.encoded, table.absent, table.failed_total) == (n_audio, len(segments) - n_audio, 0)


def test_bad_input_is_an_error_row_with_its_reason(tiny_store):
    bad_audio, bad_midi = first_with(tiny_store, "has_audio"), first_with(tiny_store, "has_midi")
    break_media(tiny_store, bad_audio, audio=[float("nan")] * 100)
    break_media(tiny_store, bad_midi, midi=b"not a midi file")
    audio, midi = encode(tiny_store).tables[0], encode(tiny_store, "fake_midi").tables[0]
    assert audio.failed == {"audio has N NaN samples": 1} and midi.failed == {"undecodable MIDI (no MThd header)": 1}
    bad = rows_by_id(tiny_store, "audio.fake_audio.v1")[bad_audio]
    assert (bad["vector"], bad["present"], bad["status"]) == (None, False, "error: audio has 100 NaN samples")
    midi_rows = rows_by_id(tiny_store, "midi.fake_midi.v1")
    assert midi_rows[bad_midi]["status"].startswith("error: undecodable MIDI")
    assert all((r["vector"] is None) == (not r["present"]) for r in midi_rows.values())
    record = get_encoder_record(tiny_store, "midi.fake_midi.v1")
    assert record.failed == 1 and record.kind == "tensor" and record.shape == (2, 4)


def test_rerun_resumes_and_then_encodes_nothing(tiny_store):
    total = tiny_store.count(SEGMENTS)
    first = encode(tiny_store, limit=10).tables[0]
    assert first.pending == 10 and tiny_store.count("audio.fake_audio.v1") == 10
    assert get_encoder_record(tiny_store, "audio.fake_audio.v1").state == "building"
    second = encode(tiny_store).tables[0]
    assert (second.skipped_existing, second.pending, second.rows, second.state) == (10, total - 10, total, "complete")
    third = encode(tiny_store).tables[0]
    assert (third.pending, third.encoded, third.skipped_existing) == (0, 0, total)
    assert len(tiny_store.keys("audio.fake_audio.v1")) == tiny_store.count("audio.fake_audio.v1") == total


def test_same_version_other_params_is_refused(tiny_store):
    encode(tiny_store, params={"scale": "1.0"})
    with pytest.raises(VersionConflictError, match=r"stored: params=\{\"scale\": 1.0\}"):
        encode(tiny_store, params={"scale": "2.0"})
    assert get_encoder_record(tiny_store, "audio.fake_audio.v1").params == '{"scale": 1.0}'


def test_two_versions_live_side_by_side(tiny_store):
    encode(tiny_store, version="v1", params={"scale": "1"})
    encode(tiny_store, version="v2", params={"scale": "2"})
    v1, v2 = rows_by_id(tiny_store, "audio.fake_audio.v1"), rows_by_id(tiny_store, "audio.fake_audio.v2")
    sid = first_with(tiny_store, "has_audio")
    assert np.allclose(np.array(v2[sid]["vector"]), 2 * np.array(v1[sid]["vector"]))
    assert {v["version"] for v in list_versions(tiny_store)} == {"v1", "v2"}


def test_text_is_encoded_once_per_distinct_text_and_fanned_out(tiny_store):
    fake_encoders.TEXT_CALLS.clear()
    summary = encode(tiny_store, "fake_text", model="fake/other-model")
    segments = segments_by_id(tiny_store)
    concepts = {s["concept_text"] for s in segments.values()}
    lyrics = {s["lyric_text"] for s in segments.values() if s["has_lyrics"]}
    assert sorted(fake_encoders.TEXT_CALLS) == sorted(concepts | lyrics) and len(concepts) < len(segments)
    concept_rows = rows_by_id(tiny_store, "concept.fake_text.v1")
    by_text: dict[str, set] = {}
    for sid, row in concept_rows.items():
        by_text.setdefault(segments[sid]["concept_text"], set()).add(tuple(row["vector"]))
    assert all(len(vectors) == 1 for vectors in by_text.values())
    assert [t.table for t in summary.tables] == ["lyrics.fake_text.v1", "concept.fake_text.v1"]
    assert get_encoder_record(tiny_store, "lyrics.fake_text.v1").model_id == "fake/other-model"


def test_new_segment_reuses_an_encoded_text(tiny_store):
    encode(tiny_store, "fake_text", modalities=("concept",))
    row = tiny_store.read(SEGMENTS).to_pylist()[0]
    late = pa.Table.from_pylist([{**row, "segment_id": "late-seg"}], schema=tiny_store.table(SEGMENTS).schema)
    tiny_store.upsert(SEGMENTS, late)
    fake_encoders.TEXT_CALLS.clear()
    table = encode(tiny_store, "fake_text", modalities=("concept",)).tables[0]
    assert (table.encoded, table.reused, fake_encoders.TEXT_CALLS) == (1, 1, [])
    rows = rows_by_id(tiny_store, "concept.fake_text.v1")
    assert rows["late-seg"]["vector"] == rows[row["segment_id"]]["vector"]


def test_second_writer_is_refused(tiny_store):
    with tiny_store.writer("audio.fake_audio.v1"):
        with pytest.raises(WriterLockedError, match="audio.fake_audio.v1"):
            encode(tiny_store)
    assert not tiny_store.has_table("audio.fake_audio.v1") or tiny_store.count("audio.fake_audio.v1") == 0


def test_strict_stops_at_bad_input_and_a_later_run_resumes(tiny_store):
    bad = sorted(s for s, r in segments_by_id(tiny_store).items() if r["has_audio"])[-1]
    break_media(tiny_store, bad, audio=[float("nan")] * 10)
    with pytest.raises(BadInputError, match=bad) as info:
        encode(tiny_store, strict=True, batch_size=4)
    assert info.value.segment_id == bad and "NaN" in info.value.reason
    written = tiny_store.count("audio.fake_audio.v1")
    assert 0 < written < tiny_store.count(SEGMENTS)
    table = encode(tiny_store).tables[0]
    assert table.failed_total == 1 and table.skipped_existing == written
    assert tiny_store.count("audio.fake_audio.v1") == tiny_store.count(SEGMENTS)


def test_spawned_workers_give_the_same_vectors_as_inline(tiny_store):
    encode(tiny_store, version="inline", workers=0)
    encode(tiny_store, version="spawned", workers=1, batch_size=5)
    inline = rows_by_id(tiny_store, "audio.fake_audio.inline")
    spawned = rows_by_id(tiny_store, "audio.fake_audio.spawned")
    assert inline.keys() == spawned.keys()
    assert all(inline[s]["vector"] == spawned[s]["vector"] for s in inline)


def test_worker_prepared_chunks_match_inline(tiny_store):
    encoder = build_encoder("fake_audio")
    segments = sorted(segments_by_id(tiny_store).values(), key=lambda s: s["segment_id"])
    items = plan_table(segments, "audio", {}, None).items
    batches = [items[i : i + 7] for i in range(0, len(items), 7)]
    with Preparer(encoder, tiny_store, workers=2, help_inline=False) as pooled:
        from_workers = list(pooled.chunks("audio", batches))
    assert pooled.worker_chunks == len(batches) and pooled.inline_chunks == 0
    inline = list(Preparer(encoder, tiny_store, workers=0).chunks("audio", batches))
    by_id = {c.items[0].segment_ids[0]: c for c in inline}
    for chunk in from_workers:
        twin = by_id[chunk.items[0].segment_ids[0]]
        assert chunk.items == twin.items and chunk.ok_index == twin.ok_index
        assert all(np.array_equal(a, b) for a, b in zip(chunk.prepared, twin.prepared))


def test_encoder_bug_stops_the_job_naming_the_segment(tiny_store):
    with pytest.raises(EncoderError, match=r"crashed in prepare\(\) on segment .*ZeroDivisionError"):
        encode(tiny_store, "fake_buggy")


def test_bad_config_is_refused_with_choices(tiny_store):
    with pytest.raises(EncoderError, match="it reads: audio"):
        encode(tiny_store, modalities=("lyrics",))
    with pytest.raises(EncoderError, match="takes no --model"):
        encode(tiny_store, model="some/model")
    with pytest.raises(EncoderError, match="known encoders: .*fake_audio"):
        encode(tiny_store, "no_such_encoder")


_KILLABLE_JOB = """
import sys
import fake_encoders
from encoders.job import EncodeConfig, plan_table, run_encode
from encoders.pipeline import Preparer
from encoders.registry import build_encoder
from featurestore import Store
if __name__ == "__main__":
    run_encode(Store.open(sys.argv[1]), EncodeConfig("fake_audio", "v1", batch_size=3, workers=0))
"""


def test_kill_9_midway_then_rerun_leaves_one_row_per_segment(tiny_store):
    table = "audio.fake_audio.v1"
    env = {**os.environ, "FAKE_ENCODER_DELAY_S": "0.4", "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE_JOB, tiny_store.uri], env=env)
    try:
        deadline = time.monotonic() + 45
        while tiny_store.count(table, "present = true") < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "the job ended before it could be killed"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    total = tiny_store.count(SEGMENTS)
    assert tiny_store.count(table) < total
    assert get_encoder_record(tiny_store, table).state == "building"
    summary = encode(tiny_store).tables[0]
    assert summary.skipped_existing > 0
    assert tiny_store.count(table) == len(tiny_store.keys(table)) == total
    record = get_encoder_record(tiny_store, table)
    assert (record.state, record.rows, record.present + record.absent) == ("complete", total, total)


def test_versions_report_coverage_per_colour(tiny_store):
    encode(tiny_store)
    (info,) = list_versions(tiny_store)
    segments = segments_by_id(tiny_store).values()
    for color, pct in info["coverage_pct_by_color"].items():
        of_color = [s for s in segments if s["color"] == color]
        assert pct == round(100 * sum(s["has_audio"] for s in of_color) / len(of_color), 1)
    assert info["coverage_pct"] == round(100 * sum(s["has_audio"] for s in segments) / len(segments), 1)
    assert (info["kind"], info["shape"], info["params"], info["state"]) == ("vector", [3], {"scale": 1.0}, "complete")


@pytest.mark.parametrize("name", ["midistats", "pianoroll"])
def test_real_encoders_fill_their_tables(tiny_store, name):
    summary = encode(tiny_store, name, batch_size=16)
    segments = segments_by_id(tiny_store)
    for table in summary.tables:
        record = get_encoder_record(tiny_store, table.table)
        rows = rows_by_id(tiny_store, table.table)
        assert rows.keys() == segments.keys() and record.state == "complete"
        assert record.present == table.encoded > 0 and table.failed_total == 0
        for row in rows.values():
            if row["present"]:
                vector = np.array(row["vector"])
                assert vector.size == int(np.prod(record.shape)) and np.all(np.isfinite(vector))
            else:
                assert row["vector"] is None and row["status"] == "absent"


def test_cli_encode_and_versions(tiny_store):
    import json

    from typer.testing import CliRunner

    from cli import app

    runner = CliRunner()
    args = ["encode", "--encoder", "fake_audio", "--version", "v1", "--param", "scale=2", "--workers", "0"]
    result = runner.invoke(app, args + ["--store", tiny_store.uri, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tables"][0]["rows"] == tiny_store.count(SEGMENTS)
    listing = runner.invoke(app, ["versions", "--store", tiny_store.uri, "--json"])
    assert [v["params"] for v in json.loads(listing.stdout)] == [{"scale": 2.0}]
    unknown = runner.invoke(app, ["encode", "--encoder", "nope", "--version", "v1", "--store", tiny_store.uri])
    assert unknown.exit_code == 2 and "known encoders" in unknown.output


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's reaping is pending


def test_prepare_workers_exit_when_their_parent_is_killed():
    root = Path(__file__).resolve().parent.parent
    child = ("import sys, time; from encoders.pipeline import exit_with_parent; "
             "exit_with_parent(int(sys.argv[1]), 0.1); print('ready', flush=True); time.sleep(60)")
    parent = (f"import os, subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {child!r}, "
              "str(os.getpid())]); print(p.pid, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)})
    worker = int(proc.stdout.readline())
    assert proc.stdout.readline().strip() == "ready" and _alive(worker)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)
