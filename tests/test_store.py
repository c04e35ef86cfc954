import pyarrow as pa
import pytest

from featurestore import Store, TableNotFoundError, VersionConflictError, WriterLockedError
from featurestore.registry import EncoderRecord, claim_version, get_encoder_record
from featurestore.schemas import SEGMENTS, FeatureTableName, feature_schema, vector_shape
from featurestore.taxonomy import COLORS, TaxonomyError, canonical_color, parse_modes, soft_target


def test_upsert_never_duplicates(tiny_store):
    before = tiny_store.count(SEGMENTS)
    rows = tiny_store.read(SEGMENTS)
    inserted, updated = tiny_store.upsert(SEGMENTS, rows)
    assert (inserted, updated) == (0, before)
    assert tiny_store.count(SEGMENTS) == before
    assert len(tiny_store.keys(SEGMENTS)) == before


def test_nullable_vectors_round_trip(tmp_path):
    store = Store.open(tmp_path / "s")
    store.ensure_table("audio.x.v1", feature_schema((4,)))
    data = pa.table(
        {
            "segment_id": ["a", "b"],
            "vector": pa.array([[1, 2, 3, 4], None], type=pa.list_(pa.float32(), 4)),
            "present": [True, False],
            "status": [None, "absent"],
            "encoded_at": pa.array([None, None], type=pa.timestamp("us", tz="UTC")),
        }
    )
    store.upsert("audio.x.v1", data)
    out = store.read("audio.x.v1").sort_by("segment_id").to_pylist()
    assert out[0]["vector"] == [1, 2, 3, 4] and out[1]["vector"] is None
    assert vector_shape(store.table("audio.x.v1").schema) == (4,)


def test_missing_table_lists_existing(tiny_store):
    with pytest.raises(TableNotFoundError, match="segments"):
        tiny_store.table("audio.nope.v1")


def test_writer_lock_is_exclusive(tiny_store):
    with tiny_store.writer("segments"):
        with pytest.raises(WriterLockedError, match="another process"):
            with tiny_store.writer("segments"):
                pass
    with tiny_store.writer("segments"):
        pass


def test_versions_are_immutable(tiny_store):
    rec = EncoderRecord("audio.e.v1", "audio", "e", "v1", "vector", (4,), "float32", "{}", None, None, "f1", "1")
    claim_version(tiny_store, rec)
    assert claim_version(tiny_store, rec).fingerprint == "f1"
    with pytest.raises(VersionConflictError, match=r"stored(.|\n)*--version v2"):
        claim_version(tiny_store, EncoderRecord(**{**rec.__dict__, "fingerprint": "f2"}))
    assert get_encoder_record(tiny_store, "audio.e.v1").fingerprint == "f1"


def test_table_names_parse():
    assert str(FeatureTableName.from_spec("audio", "clap:v1")) == "audio.clap.v1"
    with pytest.raises(Exception, match="ENCODER:VERSION"):
        FeatureTableName.from_spec("audio", "clap")
    with pytest.raises(Exception, match="expected one of"):
        FeatureTableName.parse("video.clap.v1")


def test_taxonomy_soft_targets():
    assert canonical_color("green") == "Green" and len(COLORS) == 9
    assert soft_target("temporal", ("Past",)).tolist() == pytest.approx([0.8, 0.1, 0.1])
    assert soft_target("ontological", parse_modes("ontological", "Known, Forgotten")).tolist() == pytest.approx(
        [0.2, 0.4, 0.4]
    )
    assert soft_target("spatial", ()).tolist() == pytest.approx([1 / 3] * 3)
    with pytest.raises(TaxonomyError, match="Violet"):
        canonical_color("Magenta")
