"""Arrow schemas and table naming: the one home of the store's data contracts.

Schemas are declared explicitly because nullable vector columns and empty
tables cannot be inferred from data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pyarrow as pa

from featurestore.errors import InputNameError, StoreError

SEGMENTS = "segments"
MEDIA = "media"
ENCODERS = "encoders"
MODELS = "models"
SYSTEM_TABLES = (SEGMENTS, MEDIA, ENCODERS, MODELS)

MODALITIES: tuple[str, ...] = ("audio", "midi", "lyrics", "concept")
# "fused" tables hold a trained model's penultimate embeddings (see fusion/).
FEATURE_MODALITIES: tuple[str, ...] = MODALITIES + ("fused",)

KEY = "segment_id"
_NAME_PART = re.compile(r"^[A-Za-z0-9_\-]+$")
# A model input is named after the modality it reads, `midi`, or `midi.TAG` when several inputs read one
# modality (MIDI statistics beside a piano roll): the part before the dot is what a candidate must give.
INPUT_TAG_SEP = "."


def input_modality(name: str) -> str:
    """The modality model input `name` reads: `midi` and `midi.pianoroll` -> `midi`; InputNameError otherwise."""
    modality, sep, tag = str(name).partition(INPUT_TAG_SEP)
    if modality not in MODALITIES or (sep and not _NAME_PART.match(tag)):
        raise InputNameError(
            f"bad input name {name!r}; an input is named after its modality ({', '.join(MODALITIES)}), "
            f"optionally with a tag of letters, digits, '_' or '-' after a dot, e.g. midi or midi.pianoroll"
        )
    return modality


def input_name(modality: str, tag: str | None = None) -> str:
    """`("midi", "pianoroll")` -> `midi.pianoroll`; no tag -> `midi` (checked by input_modality)."""
    name = modality if tag is None else f"{modality}{INPUT_TAG_SEP}{tag}"
    input_modality(name)
    return name

SEGMENTS_SCHEMA = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),
        pa.field("song_id", pa.string(), nullable=False),
        pa.field("color", pa.string(), nullable=False),
        pa.field("temporal", pa.string()),
        pa.field("spatial", pa.string()),
        pa.field("ontological", pa.string()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("bpm", pa.float64()),
        pa.field("key", pa.string()),
        pa.field("lyric_text", pa.string()),
        pa.field("concept_text", pa.string()),
        pa.field("has_audio", pa.bool_(), nullable=False),
        pa.field("has_midi", pa.bool_(), nullable=False),
        pa.field("has_lyrics", pa.bool_(), nullable=False),
        # Why a modality was dropped at ingest (e.g. "error: audio holds NaN"); null when fine.
        pa.field("audio_status", pa.string()),
        pa.field("midi_status", pa.string()),
        pa.field("lyrics_status", pa.string()),
        pa.field("concept_status", pa.string()),
        pa.field("source", pa.string()),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC")),
        # Content digests (featurestore/lineage.py): per modality (null when absent) and of the row.
        pa.field("audio_digest", pa.string()),
        pa.field("midi_digest", pa.string()),
        pa.field("lyrics_digest", pa.string()),
        pa.field("concept_digest", pa.string()),
        pa.field("row_digest", pa.string()),
    ]
)

MEDIA_SCHEMA = pa.schema(
    [
        pa.field("segment_id", pa.string(), nullable=False),
        pa.field("audio", pa.large_list(pa.float32())),
        pa.field("sample_rate", pa.int32()),
        pa.field("midi", pa.large_binary()),
    ]
)

ENCODERS_SCHEMA = pa.schema(
    [
        pa.field("table_name", pa.string(), nullable=False),
        pa.field("modality", pa.string(), nullable=False),
        pa.field("encoder", pa.string(), nullable=False),
        pa.field("version", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # vector | tensor
        pa.field("shape", pa.list_(pa.int64()), nullable=False),
        pa.field("dtype", pa.string(), nullable=False),
        pa.field("params", pa.string(), nullable=False),  # JSON of the encoder config
        pa.field("model_id", pa.string()),
        pa.field("weights_fingerprint", pa.string()),
        pa.field("fingerprint", pa.string(), nullable=False),
        pa.field("code_version", pa.string(), nullable=False),
        pa.field("state", pa.string(), nullable=False),  # building | complete
        pa.field("rows", pa.int64()),
        pa.field("present", pa.int64()),
        pa.field("absent", pa.int64()),
        pa.field("failed", pa.int64()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)

MODELS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("inputs", pa.string(), nullable=False),  # JSON {input: "encoder:version"}
        pa.field("feature_tables", pa.string(), nullable=False),  # JSON {table: lance version}
        pa.field("config", pa.string()),  # JSON training config
        pa.field("metrics", pa.string()),  # JSON summary metrics
        pa.field("artifact_path", pa.string(), nullable=False),
    ]
)

SYSTEM_SCHEMAS = {
    SEGMENTS: SEGMENTS_SCHEMA,
    MEDIA: MEDIA_SCHEMA,
    ENCODERS: ENCODERS_SCHEMA,
    MODELS: MODELS_SCHEMA,
}
SYSTEM_KEYS = {SEGMENTS: KEY, MEDIA: KEY, ENCODERS: "table_name", MODELS: "run_id"}

VECTOR_DTYPES = {"float32": pa.float32(), "float16": pa.float16()}


def feature_schema(shape: tuple[int, ...], dtype: str = "float32") -> pa.Schema:
    """Schema of a feature table.

    Tensor features (e.g. a 128 x 256 piano roll) are stored flattened in a
    fixed-size list; the shape lives in the field metadata and the registry.
    (Arrow's fixed_shape_tensor extension does not round-trip through
    lancedb 0.40 writes, so a flat list is the portable choice.)
    """
    if dtype not in VECTOR_DTYPES:
        raise StoreError(f"unsupported vector dtype {dtype!r}; expected one of {', '.join(VECTOR_DTYPES)}")
    size = 1
    for dim in shape:
        size *= int(dim)
    vector = pa.field(
        "vector",
        pa.list_(VECTOR_DTYPES[dtype], size),
        nullable=True,
        metadata={"shape": json.dumps(list(shape))},
    )
    return pa.schema(
        [
            pa.field("segment_id", pa.string(), nullable=False),
            vector,
            pa.field("present", pa.bool_(), nullable=False),
            pa.field("status", pa.string()),
            pa.field("encoded_at", pa.timestamp("us", tz="UTC")),
            # Digest of the input the row was computed from (featurestore/lineage.py); "" if absent.
            pa.field("input_digest", pa.string()),
        ]
    )


@dataclass(frozen=True)
class FeatureTableName:
    """`{modality}.{encoder}.{version}`, e.g. `audio.clap.v1`."""

    modality: str
    encoder: str
    version: str

    def __str__(self) -> str:
        return f"{self.modality}.{self.encoder}.{self.version}"

    @property
    def spec(self) -> str:
        return f"{self.encoder}:{self.version}"

    @classmethod
    def parse(cls, name: str) -> "FeatureTableName":
        parts = name.split(".")
        if len(parts) != 3 or not all(_NAME_PART.match(p) for p in parts):
            raise StoreError(
                f"bad feature table name {name!r}; expected MODALITY.ENCODER.VERSION, e.g. audio.clap.v1"
            )
        if parts[0] not in FEATURE_MODALITIES:
            raise StoreError(
                f"unknown modality {parts[0]!r} in {name!r}; expected one of {', '.join(FEATURE_MODALITIES)}"
            )
        return cls(*parts)

    @classmethod
    def from_spec(cls, modality: str, spec: str) -> "FeatureTableName":
        """`("audio", "clap:v1")` -> `audio.clap.v1`."""
        encoder, sep, version = spec.partition(":")
        if not sep or not encoder or not version:
            raise StoreError(f"bad encoder spec {spec!r}; expected ENCODER:VERSION, e.g. clap:v1")
        return cls.parse(f"{modality}.{encoder}.{version}")


def vector_shape(schema: pa.Schema) -> tuple[int, ...]:
    """Shape recorded on a feature table's vector field."""
    field = schema.field("vector")
    meta = field.metadata or {}
    if b"shape" in meta:
        return tuple(json.loads(meta[b"shape"]))
    return (field.type.list_size,)
