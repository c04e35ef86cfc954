"""The feature-table contract: which tables are feature tables, what a row holds, how one is finished.

A feature table `{modality}.{encoder}.{version}` has exactly one row per
segment it has seen: `segment_id`, a nullable `vector`, `present` (true iff
the vector is there), `status` (null, `absent`, or `error: …`) and
`encoded_at`, and `input_digest`, the digest of the input it was computed from
(lineage and the segments' digest columns live in featurestore/lineage.py).
Its registry row's counts are always recomputed from the table
itself, so resumed and interrupted jobs stay right. Which `segments` columns
say a modality is there also lives here.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from featurestore.errors import StoreError
from featurestore.registry import EncoderRecord, put_encoder_record
from featurestore.schemas import SYSTEM_TABLES, FeatureTableName
from featurestore.store import Store

# modality -> the segments flag saying it is present; None where presence is the
# text itself (concept text belongs to the song, so there is no flag for it).
PRESENCE_COLUMN: dict[str, str | None] = {"audio": "has_audio", "midi": "has_midi", "lyrics": "has_lyrics",
                                          "concept": None}
TEXT_COLUMN: dict[str, str] = {"lyrics": "lyric_text", "concept": "concept_text"}
# What an encode job reads from `segments` to know what each segment has.
SEGMENT_INPUT_COLUMNS: list[str] = ["segment_id", *(c for c in PRESENCE_COLUMN.values() if c), *TEXT_COLUMN.values()]
MEDIA_COLUMNS: dict[str, list[str]] = {"audio": ["segment_id", "audio", "sample_rate"], "midi": ["segment_id", "midi"]}

PRESENT = "present = true"
ABSENT = "status = 'absent'"
FAILED = "status LIKE 'error:%'"


def is_feature_table(name: str) -> bool:
    """A valid `{modality}.{encoder}.{version}` name; system and foreign tables are not."""
    if name in SYSTEM_TABLES:
        return False
    try:
        FeatureTableName.parse(name)
    except StoreError:
        return False
    return True


def feature_table_names(store: Store) -> list[str]:
    return [name for name in store.table_names() if is_feature_table(name)]


def has_modality(segment: dict, modality: str) -> bool:
    """Whether a `segments` row (as a dict) holds `modality`."""
    flag = PRESENCE_COLUMN[modality]
    return bool(segment[flag]) if flag else segment[TEXT_COLUMN[modality]] is not None


def feature_rows(segment_ids: list[str], vectors: np.ndarray, present: np.ndarray,
                 statuses: list[str | None]) -> pa.Table:
    """Rows of a feature table: vectors [N, size] float32; a row not `present` stores a null vector."""
    size = vectors.shape[1]
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), pa.float32())
    now = datetime.now(timezone.utc)
    return pa.table(
        {
            "segment_id": pa.array(segment_ids, pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, size, mask=pa.array(~present)),
            "present": pa.array(present),
            "status": pa.array(statuses, pa.string()),
            "encoded_at": pa.array([now] * len(segment_ids), pa.timestamp("us", tz="UTC")),
        }
    )


def rows_from_entries(entries: list[tuple[str, np.ndarray | None, str | None]], size: int) -> pa.Table:
    """(segment_id, vector or None, status) -> feature rows; present iff a vector."""
    flat = np.zeros((len(entries), size), dtype=np.float32)
    present = np.zeros(len(entries), dtype=bool)
    for i, (_, vector, _) in enumerate(entries):
        if vector is not None:
            flat[i] = vector
            present[i] = True
    return feature_rows([e[0] for e in entries], flat, present, [e[2] for e in entries])


def feature_counts(store: Store, name: str) -> dict[str, int]:
    """The registry's counts of a feature table, from the table itself (zeros when it is missing)."""
    return {
        "rows": store.count(name),
        "present": store.count(name, PRESENT),
        "absent": store.count(name, ABSENT),
        "failed": store.count(name, FAILED),
    }


def finish_table(store: Store, record: EncoderRecord, complete: bool, **changes) -> EncoderRecord:
    """Write the table's registry row with counts recomputed and its state; returns the row written."""
    final = replace(record, state="complete" if complete else "building",
                    **feature_counts(store, record.table_name), **changes)
    put_encoder_record(store, final)
    return final
