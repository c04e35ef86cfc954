"""Lineage per feature row: a changed input is re-encoded, a removed one becomes absent, the join
masks stale rows, and a table is `complete` only when every segment has a current row."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tinydata import midi_bytes
from typer.testing import CliRunner

from cli import app
from encoders import job as job_module
from encoders.job import EncodeConfig, run_encode
from featurestore import Store
from featurestore.coverage import list_versions
from featurestore.doctor import diagnose
from featurestore.ingest import ingest_paths
from featurestore.join import join
from featurestore.registry import get_encoder_record
from test_ingest import row, write_parquet

TABLE = "midi.midistats.v1"
OTHER_MIDI = midi_bytes([(30 + i, i * 0.25, 0.25, 100) for i in range(12)])


def encode(store):
    [table] = run_encode(store, EncodeConfig("midistats", "v1", workers=0), progress=False).tables
    return table


def rows_by_id(store) -> dict[str, dict]:
    return {r["segment_id"]: r for r in store.read(TABLE).to_pylist()}


@pytest.fixture
def encoded(tmp_path):
    rows = [row(i, color=c) for i, c in enumerate(["Red", "Red", "Blue", "Blue", "Green", "Green"])]
    store = Store.open(tmp_path / "store")
    ingest_paths(store, [write_parquet(tmp_path / "a.parquet", rows)])
    first = encode(store)
    assert first.state == "complete" and first.encoded == 6
    return store, rows, tmp_path


def reingest(store, rows, tmp_path, **changes):
    for index, overrides in changes.items():
        rows[int(index[1:])] = row(int(index[1:]), color=rows[int(index[1:])]["rainbow_color"], **overrides)
    ingest_paths(store, [write_parquet(tmp_path / "a.parquet", rows)])


def test_changed_midi_is_re_encoded_and_removed_midi_becomes_absent(encoded):
    store, rows, tmp_path = encoded
    before = rows_by_id(store)
    reingest(store, rows, tmp_path, s1={"midi_binary": OTHER_MIDI}, s2={"midi_binary": None, "has_midi": False})
    table = encode(store)
    assert (table.stale, table.encoded, table.absent, table.skipped_existing) == (2, 1, 1, 4)
    after = rows_by_id(store)
    assert after["seg1"]["present"] and after["seg1"]["vector"] != before["seg1"]["vector"]
    assert not after["seg2"]["present"] and after["seg2"]["status"] == "absent" and after["seg2"]["vector"] is None
    assert after["seg0"]["encoded_at"] == before["seg0"]["encoded_at"]  # untouched
    assert table.state == "complete" and encode(store).pending == 0


def test_join_masks_stale_rows_and_versions_and_doctor_count_them(encoded):
    store, rows, tmp_path = encoded
    reingest(store, rows, tmp_path, s2={"midi_binary": None, "has_midi": False}, s3={"midi_binary": OTHER_MIDI})
    joined = join(store, {"midi": "midistats:v1"})
    masks = dict(zip(joined.table.column("segment_id").to_pylist(), joined.table.column("midi_mask").to_pylist()))
    assert masks["seg2"] is False and masks["seg3"] is False and masks["seg0"] is True
    assert joined.sources["midi"].stale_rows == 2
    [info] = list_versions(store)
    assert info["stale"] == 2
    lineage = [f for f in diagnose(store).findings if f.check == "lineage"]
    assert len(lineage) == 1 and "2 row(s)" in lineage[0].problem and "--encoder midistats" in lineage[0].fix
    shown = CliRunner().invoke(app, ["versions", "--store", store.uri])
    assert shown.exit_code == 0 and "2 row(s) computed from inputs that changed since" in " ".join(shown.output.split())
    encode(store)
    assert join(store, {"midi": "midistats:v1"}).sources["midi"].stale_rows == 0


def test_encode_during_an_ingest_never_ends_complete_with_rows_missing(encoded, monkeypatch):
    store, rows, tmp_path = encoded
    plan = job_module.plan_table

    def plan_then_ingest(*args, **kwargs):  # an ingest commits while the encode job runs
        planned = plan(*args, **kwargs)
        more = rows + [row(10, color="Red"), row(11, color="Blue", midi_binary=OTHER_MIDI)]
        ingest_paths(store, [write_parquet(tmp_path / "b.parquet", more)])
        return planned

    monkeypatch.setattr(job_module, "plan_table", plan_then_ingest)
    reingest(store, rows, tmp_path, s4={"midi_binary": OTHER_MIDI})
    during = encode(store)
    assert during.state == "building"
    assert get_encoder_record(store, TABLE).state == "building"
    monkeypatch.setattr(job_module, "plan_table", plan)
    after = encode(store)
    # Only the two new segments: a new source label changes no input, so no row goes stale.
    assert (after.state, after.encoded, after.rows) == ("complete", 2, 8)


def test_table_written_before_lineage_is_re_encoded_once(encoded):
    store, _, _ = encoded
    table = store.table(TABLE)
    table.drop_columns(["input_digest"])  # as written by older code
    assert list_versions(store)[0]["unverified"] == 6
    again = encode(store)
    assert (again.stale, again.encoded, again.state) == (6, 6, "complete")
    assert encode(store).pending == 0 and json.dumps(list_versions(store)[0]["unverified"]) == "0"


def test_search_leaves_stale_rows_out_until_they_are_re_encoded(encoded):
    from featurestore.errors import SearchError
    from featurestore.lineage import stale_counts
    from featurestore.search import SearchFilter, Searcher

    store, rows, tmp_path = encoded
    query = np.random.default_rng(0).normal(size=len(store.read(TABLE).to_pylist()[0]["vector"]))
    everyone = {n.segment_id for n in Searcher(store, TABLE).search(query, k=10)}
    assert everyone == {f"seg{i}" for i in range(6)}
    reingest(store, rows, tmp_path, s3={"midi_binary": OTHER_MIDI})  # seg3's stored vector is now stale
    session = Searcher(store, TABLE)
    assert session.stale_ids.to_pylist() == ["seg3"] == sorted(stale_counts(store, TABLE, "midi").stale_ids)
    for exact in (True, None):
        assert {n.segment_id for n in session.search(query, k=10, exact=exact)} == everyone - {"seg3"}
    blue = SearchFilter(colors=("Blue",))
    assert [n.segment_id for n in session.search(query, k=10, search_filter=blue)] == ["seg2"]
    assert session.preload() > 0 and "seg3" not in {n.segment_id for n in session.search(query, k=10)}
    with pytest.raises(SearchError, match="seg3 .*changed since.*re-encode"):
        session.search("seg3", k=3)
    encode(store)
    assert session.refresh() and not len(session.stale_ids)
    assert {n.segment_id for n in session.search("seg3", k=10, include_self=True)} == everyone


def test_neighbors_command_says_how_many_stale_segments_it_left_out(encoded):
    store, rows, tmp_path = encoded
    reingest(store, rows, tmp_path, s3={"midi_binary": OTHER_MIDI})
    encode(store)  # seg3 now differs from the rest, so it has a direction in the standardised space
    reingest(store, rows, tmp_path, s4={"midi_binary": OTHER_MIDI})  # seg4's stored vector is now stale
    runner = CliRunner()
    shown = runner.invoke(app, ["neighbors", "--table", TABLE, "--segment", "seg3", "-k", "9", "--store", store.uri])
    said = " ".join(shown.output.split())
    assert shown.exit_code == 0, said
    assert "1 segment(s) left out" in said and "chromatic encode" in said and "seg4" not in said
    as_json = runner.invoke(app, ["neighbors", "--table", TABLE, "--segment", "seg3", "--json", "--store", store.uri])
    report = json.loads(as_json.stdout)
    assert report["stale_left_out"] == 1 and "seg4" not in {n["segment_id"] for n in report["neighbors"]}
    assert len(report["neighbors"]) == 4  # the other current segments
