"""Content digests: what a segment's inputs are, so nothing downstream goes stale unseen.

Ingest stores one digest per modality in `segments` (`audio_digest`,
`midi_digest`, `lyrics_digest`, `concept_digest`; null when the modality is
absent) and a `row_digest` of the whole row (labels, text, media digests), so a
re-ingest writes only rows whose content changed. Feature rows record the digest
of the input they were computed from (featurestore/schemas.py, `input_digest`).

Digests are BLAKE2b-128 in hex: collisions are not a practical concern for this,
and it hashes at memory speed (a 290 MB corpus adds well under a second).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.schemas import KEY, SEGMENTS

DIGEST_COLUMN = {
    "audio": "audio_digest", "midi": "midi_digest", "lyrics": "lyrics_digest", "concept": "concept_digest",
}
ROW_DIGEST = "row_digest"
DIGEST_COLUMNS: tuple[str, ...] = (*DIGEST_COLUMN.values(), ROW_DIGEST)
_SIZE = 16


def digest_bytes(*parts: bytes | memoryview | str) -> str:
    h = hashlib.blake2b(digest_size=_SIZE)
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))  # length-prefixed: ("ab", "c") != ("a", "bc")
        h.update(data)
    return h.hexdigest()


def audio_digest(samples: np.ndarray | None, sample_rate: int | None) -> str | None:
    """Digest of float32 samples and their rate; None when there is no audio."""
    if samples is None:
        return None
    data = np.ascontiguousarray(samples, dtype="<f4")
    return digest_bytes(str(int(sample_rate or 0)), memoryview(data).cast("B"))


def midi_digest(blob: bytes | memoryview | None) -> str | None:
    return None if blob is None else digest_bytes(blob)


def text_digest(text: str | None) -> str | None:
    return None if text is None else digest_bytes(text)


def row_digest(row: dict, ignore: tuple[str, ...]) -> str:
    """Digest of a `segments` row's content (without the columns in `ignore`, e.g. timestamps)."""
    content = {k: v for k, v in row.items() if k not in ignore}
    return digest_bytes(json.dumps(content, sort_keys=True, default=str))


# -- feature rows vs their inputs -----------------------------------------------------
INPUT_DIGEST = "input_digest"  # on feature rows: the digest of the input; ABSENT for an absent input
ABSENT = ""  # the input digest of a row recorded as absent (null means: written before lineage)


def current_input_digests(store, modality: str) -> dict[str, str | None]:
    """{segment_id: digest of its `modality` input now (ABSENT if it has none); None if unknown}."""
    column = DIGEST_COLUMN[modality]
    if column not in store.table(SEGMENTS).schema.names:
        return dict.fromkeys(store.keys(SEGMENTS))
    rows = store.read(SEGMENTS, [KEY, column, ROW_DIGEST])
    ids, digests, known = (rows.column(c).to_pylist() for c in (KEY, column, ROW_DIGEST))
    return {sid: (digest or ABSENT) if row else None for sid, digest, row in zip(ids, digests, known)}


def recorded_digests(store, table: str) -> dict[str, str | None]:
    """{segment_id: the input digest its row was computed from (None: not recorded)} of a feature table."""
    if not store.has_table(table):
        return {}
    has_column = INPUT_DIGEST in store.table(table).schema.names
    rows = store.read(table, [KEY, INPUT_DIGEST] if has_column else [KEY])
    digests = rows.column(INPUT_DIGEST).to_pylist() if has_column else [None] * rows.num_rows
    return dict(zip(rows.column(KEY).to_pylist(), digests))


@dataclass(frozen=True)
class StaleCounts:
    """How a feature table's rows compare with the current inputs of their segments."""

    stale: int = 0  # computed from an input that has changed (or disappeared) since
    unrecorded: int = 0  # written before lineage existed: cannot be checked, re-encoding records it
    unknown: int = 0  # the segment's own digest is unknown (ingested before digests; re-ingest records it)
    stale_ids: frozenset[str] = frozenset()

    @property
    def not_current(self) -> int:
        """Rows that are not known to match their input (a table with any is not `complete`)."""
        return self.stale + self.unrecorded


def is_current(recorded: str | None, now: str | None) -> bool | None:
    """Does a row computed from `recorded` match the input `now`? None: cannot tell (segment digest unknown)."""
    if now is None:
        return None
    return recorded == now


def stale_counts(store, table: str, modality: str, current: dict[str, str | None] | None = None) -> StaleCounts:
    """Compare each feature row's input digest with its segment's current one."""
    if modality not in DIGEST_COLUMN:
        return StaleCounts()  # e.g. fused tables: computed from several inputs, by a model run
    current = current if current is not None else current_input_digests(store, modality)
    return compare_digests(recorded_digests(store, table), current)


def compare_digests(recorded: dict[str, str | None], current: dict[str, str | None]) -> StaleCounts:
    """StaleCounts of feature rows ({segment_id: recorded input digest}) against their segments' digests now."""
    stale, unrecorded, unknown = [], 0, 0
    for sid, digest in recorded.items():
        if sid not in current:
            continue  # a segment no longer in `segments`: the join never reads it
        verdict = is_current(digest, current[sid])
        if verdict is None:
            unknown += 1
        elif not verdict and digest is None:
            unrecorded += 1
        elif not verdict:
            stale.append(sid)
    return StaleCounts(len(stale), unrecorded, unknown, frozenset(stale))


def stale_segment_ids(features, segments, modality: str, row_filter: str | None = None) -> pa.Array:
    """Segment ids whose row in `features` was computed from an input that has changed since, per `segments`.

    Both are Lance datasets at one version each (a search session's snapshot), so the answer belongs to that
    snapshot. The rule is `compare_digests`' over whole columns: a row written before lineage (no recorded
    digest) or a segment whose digest is unknown is not called stale. `row_filter`: only these feature rows.
    """
    if modality not in DIGEST_COLUMN or segments is None or INPUT_DIGEST not in features.schema.names:
        return pa.array([], pa.string())
    column = DIGEST_COLUMN[modality]
    if column not in segments.schema.names or ROW_DIGEST not in segments.schema.names:
        return pa.array([], pa.string())
    now = segments.to_table(columns=[KEY, column, ROW_DIGEST])
    rows = features.to_table(columns=[KEY, INPUT_DIGEST], filter=row_filter)
    at = pc.index_in(rows.column(KEY), value_set=now.column(KEY).combine_chunks())
    known = pc.is_valid(pc.take(now.column(ROW_DIGEST), at))  # null `at` (segment gone) is not known either
    current = pc.fill_null(pc.take(now.column(column), at), ABSENT)
    recorded = rows.column(INPUT_DIGEST)
    stale = pc.and_(pc.and_(known, pc.is_valid(recorded)), pc.not_equal(recorded, current))
    return rows.column(KEY).filter(pc.fill_null(stale, False)).combine_chunks()
