import math

import numpy as np
import pyarrow as pa
import pytest

from featurestore import SchemaMismatchError, StoreError, TableNotFoundError
from featurestore.join import input_arrays, join
from featurestore.registry import EncoderRecord, put_encoder_record
from featurestore.schemas import SEGMENTS, feature_schema
from featurestore.taxonomy import color_index


def write_feature_table(store, modality, spec, vectors, shape, kind="vector", dtype="float32", registry_shape=None):
    """A feature table + its registry row, written directly (no encoder involved).

    vectors: {segment_id: array or None}; None is stored as a null vector (present false).
    """
    encoder, version = spec.split(":")
    name = f"{modality}.{encoder}.{version}"
    size = math.prod(shape)
    store.ensure_table(name, feature_schema(shape, dtype))
    ids = list(vectors)
    flat = [None if vectors[s] is None else np.asarray(vectors[s], dtype=np.float32).reshape(-1).tolist() for s in ids]
    data = pa.table(
        {
            "segment_id": ids,
            "vector": pa.array(flat, type=pa.list_(pa.float32(), size)),
            "present": [v is not None for v in flat],
            "status": [None if v is not None else "absent" for v in flat],
            "encoded_at": pa.array([None] * len(ids), type=pa.timestamp("us", tz="UTC")),
        }
    )
    store.upsert(name, data)
    record = EncoderRecord(
        name, modality, encoder, version, kind, tuple(registry_shape or shape), dtype, '{"p": 1}',
        None, None, f"fp-{name}", "1", state="complete", rows=len(ids),
    )
    put_encoder_record(store, record)
    return name


def colour_vectors(store, shape, keep=0.8, seed=0, scale=1.0):
    """{segment_id: array or None}: mean depends on the colour, plus noise; some rows left out or null."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(9, math.prod(shape)))
    out = {}
    for row in store.read(SEGMENTS, ["segment_id", "color"]).to_pylist():
        draw = rng.random()
        if draw < keep:
            vec = scale * centres[color_index(row["color"])] + 0.5 * rng.normal(size=centres.shape[1])
            out[row["segment_id"]] = vec.reshape(shape)
        elif draw < keep + (1 - keep) / 2:
            out[row["segment_id"]] = None  # a row with a null vector; the rest get no row at all
    return out


def test_left_join_masks_missing_and_null(tiny_store):
    vectors = colour_vectors(tiny_store, (8,))
    write_feature_table(tiny_store, "audio", "fake:v1", vectors, (8,))
    result = join(tiny_store, {"audio": "fake:v1"})
    table = result.table
    assert table.num_rows == tiny_store.count(SEGMENTS)
    assert set(table.column("segment_id").to_pylist()) == tiny_store.keys(SEGMENTS)
    mask = dict(zip(table.column("segment_id").to_pylist(), table.column("audio_mask").to_pylist()))
    assert all(mask[sid] == (vectors.get(sid) is not None) for sid in mask)
    arrays = input_arrays(result, "audio")
    ids = table.column("segment_id").to_pylist()
    for row, sid in enumerate(ids):
        expected = vectors.get(sid)
        np.testing.assert_allclose(arrays.values[row], 0 if expected is None else expected, rtol=1e-6)
    source = result.sources["audio"]
    assert source.present == sum(v is not None for v in vectors.values())
    assert source.null_vectors == sum(v is None for v in vectors.values())
    assert source.missing_rows == len(ids) - len(vectors)


def test_join_records_lance_versions_and_rejoins_old_version(tiny_store):
    vectors = colour_vectors(tiny_store, (4,), keep=1.0)
    name = write_feature_table(tiny_store, "lyrics", "fake:v1", vectors, (4,))
    first = join(tiny_store, {"lyrics": "fake:v1"})
    assert first.sources["lyrics"].tables[0].lance_version == tiny_store.version(name)
    assert first.versions[SEGMENTS] == tiny_store.version(SEGMENTS)
    changed = {sid: np.full(4, 7.0) for sid in vectors}
    write_feature_table(tiny_store, "lyrics", "fake:v1", changed, (4,))
    assert tiny_store.version(name) > first.sources["lyrics"].tables[0].lance_version
    again = join(tiny_store, {"lyrics": "fake:v1"}, versions=first.versions)
    assert again.table.column("lyrics").equals(first.table.column("lyrics"))
    latest = join(tiny_store, {"lyrics": "fake:v1"})
    assert not latest.table.column("lyrics").equals(first.table.column("lyrics"))


def test_tensor_input_keeps_its_shape_and_unusable_rows_are_masked(tiny_store):
    vectors = colour_vectors(tiny_store, (6, 10), keep=1.0)
    nan_row, huge_row = sorted(vectors)[:2]
    vectors[nan_row] = np.full((6, 10), np.nan)  # the store nulls it on write
    vectors[huge_row] = np.full((6, 10), 1e6)  # overflows float16: reported, not silently inf
    write_feature_table(tiny_store, "midi", "roll:v1", vectors, (6, 10), kind="tensor")
    result = join(tiny_store, {"midi": "roll:v1"})
    arrays = input_arrays(result, "midi", np.float16)
    assert arrays.values.shape == (tiny_store.count(SEGMENTS), 6, 10) and arrays.values.dtype == np.float16
    assert arrays.invalid_segments == [huge_row]
    ids = result.table.column("segment_id").to_pylist()
    for sid in (nan_row, huge_row):
        assert not arrays.mask[ids.index(sid)] and not arrays.values[ids.index(sid)].any()
    assert np.isfinite(arrays.values).all() and arrays.mask.sum() == len(ids) - 2


def test_unknown_table_lists_existing_tables_of_that_modality(tiny_store):
    write_feature_table(tiny_store, "audio", "fake:v1", colour_vectors(tiny_store, (4,)), (4,))
    write_feature_table(tiny_store, "lyrics", "fake:v1", colour_vectors(tiny_store, (4,)), (4,))
    with pytest.raises(TableNotFoundError) as info:
        join(tiny_store, {"audio": "clap:v9"})
    assert "audio.clap.v9" in str(info.value) and "audio.fake.v1" in str(info.value)
    assert "lyrics.fake.v1" not in str(info.value)


def test_unknown_input_name_lists_valid_inputs(tiny_store):
    with pytest.raises(Exception, match="audio, midi, lyrics, concept"):
        join(tiny_store, {"video": "x:v1"})


def test_shape_disagreeing_with_registry_is_refused(tiny_store):
    vectors = colour_vectors(tiny_store, (4,))
    write_feature_table(tiny_store, "concept", "fake:v1", vectors, (4,), registry_shape=(5,))
    with pytest.raises(SchemaMismatchError, match=r"\(5,\)"):
        join(tiny_store, {"concept": "fake:v1"})


def _coalesce_store(store):
    """midi.roll.v1 (ones) where segments have MIDI; audio.tr.v1 (twos) where they have audio."""
    rows = store.read(SEGMENTS, ["segment_id", "has_midi", "has_audio", "color"]).to_pylist()
    midi = {r["segment_id"]: (np.ones((2, 3)) if r["has_midi"] else None) for r in rows}
    audio = {r["segment_id"]: (np.full((2, 3), 2.0) if r["has_audio"] else None) for r in rows}
    write_feature_table(store, "midi", "roll:v1", midi, (2, 3), kind="tensor", dtype="float16")
    write_feature_table(store, "audio", "tr:v1", audio, (2, 3), kind="tensor", dtype="float16")
    return rows


def test_coalesced_input_takes_the_first_present_source_and_counts_fills(tiny_store):
    rows = _coalesce_store(tiny_store)
    result = join(tiny_store, {"midi": "roll:v1|tr:v1"})
    arrays = input_arrays(result, "midi")
    by_id = {r["segment_id"]: r for r in rows}
    for index, sid in enumerate(result.table.column("segment_id").to_pylist()):
        row = by_id[sid]
        expected = 1.0 if row["has_midi"] else 2.0 if row["has_audio"] else 0.0
        assert arrays.mask[index] == (row["has_midi"] or row["has_audio"])
        assert np.all(arrays.values[index] == expected)
    source = result.sources["midi"]
    assert source.coalesced and source.spec == "roll:v1|tr:v1"
    roll, tr = source.tables
    assert (roll.table, tr.table) == ("midi.roll.v1", "audio.tr.v1")
    assert roll.filled == sum(r["has_midi"] for r in rows)
    assert tr.filled == sum(r["has_audio"] and not r["has_midi"] for r in rows) > 0
    assert tr.present == sum(r["has_audio"] for r in rows) > tr.filled
    assert source.present == roll.filled + tr.filled == int(arrays.mask.sum())
    for color in {r["color"] for r in rows}:
        gained = sum(r["has_audio"] and not r["has_midi"] for r in rows if r["color"] == color)
        assert tr.filled_by_color.get(color, 0) == gained
    assert result.versions["audio.tr.v1"] == tiny_store.version("audio.tr.v1")
    assert source.fills()["audio.tr.v1"]["filled"] == tr.filled


def test_a_spec_finds_its_table_under_another_modality(tiny_store):
    _coalesce_store(tiny_store)
    result = join(tiny_store, {"midi": "tr:v1"})  # a model on transcriptions alone
    assert result.sources["midi"].tables[0].table == "audio.tr.v1" and not result.sources["midi"].coalesced


def test_coalesced_sources_must_share_a_shape_and_be_listed_once(tiny_store):
    _coalesce_store(tiny_store)
    vectors = {sid: np.zeros((3, 2)) for sid in tiny_store.keys(SEGMENTS)}
    write_feature_table(tiny_store, "audio", "tr:v2", vectors, (3, 2), kind="tensor")
    with pytest.raises(SchemaMismatchError, match="one shape"):
        join(tiny_store, {"midi": "roll:v1|tr:v2"})
    with pytest.raises(StoreError, match="twice"):
        join(tiny_store, {"midi": "roll:v1|roll:v1"})
    with pytest.raises(StoreError, match="bad input spec"):
        join(tiny_store, {"midi": "roll:v1|"})


def test_versions_and_info_show_what_transcription_adds_per_colour(tiny_store):
    import json

    from typer.testing import CliRunner

    from cli import app
    from featurestore.coverage import coalesced_coverage, list_versions

    rows = _coalesce_store(tiny_store)
    [pair] = coalesced_coverage(tiny_store)
    assert pair["spec"] == "roll:v1|tr:v1" and pair["tables"] == ["midi.roll.v1", "audio.tr.v1"]
    gained = [r for r in rows if r["has_audio"] and not r["has_midi"]]
    assert pair["gained"] == len(gained) > 0
    for color in {r["color"] for r in rows}:
        of_color = [r for r in rows if r["color"] == color]
        assert pair["gained_by_color"].get(color, 0) == sum(r in gained for r in of_color)
        after = sum(r["has_midi"] or r["has_audio"] for r in of_color)
        assert pair["after"]["coverage_pct_by_color"][color] == round(100 * after / len(of_color), 1)
    assert pair["before"]["coverage_pct"] < pair["after"]["coverage_pct"]
    listed = {v["table"]: v for v in list_versions(tiny_store)}
    assert listed["audio.tr.v1"]["coalesced"] == [pair] and listed["midi.roll.v1"]["coalesced"] == []
    runner = CliRunner()
    info = json.loads(runner.invoke(app, ["info", "--store", tiny_store.uri, "--json"]).stdout)
    assert info["coalesced"] == [pair]
    shown = runner.invoke(app, ["versions", "--store", tiny_store.uri])
    assert shown.exit_code == 0 and "roll:v1|tr:v1" in shown.output and "gained" in shown.output
