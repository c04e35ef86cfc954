import math

import numpy as np
import pyarrow as pa
import pytest

from featurestore import SchemaMismatchError, TableNotFoundError
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
    assert first.sources["lyrics"].lance_version == tiny_store.version(name)
    assert first.versions[SEGMENTS] == tiny_store.version(SEGMENTS)
    changed = {sid: np.full(4, 7.0) for sid in vectors}
    write_feature_table(tiny_store, "lyrics", "fake:v1", changed, (4,))
    assert tiny_store.version(name) > first.sources["lyrics"].lance_version
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
