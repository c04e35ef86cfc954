"""`chromatic info`: what a store holds, and per-colour modality coverage.

Coverage comes from the flags in `segments` only; `media` blobs are never read
(row counts come from table metadata).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from featurestore.coverage import coalesced_coverage
from featurestore.feature_table import PRESENCE_COLUMN, is_feature_table
from featurestore.schemas import ENCODERS, MEDIA, MODELS, SEGMENTS
from featurestore.store import Store
from featurestore.taxonomy import COLORS

_COVERAGE_FLAGS = {f"{modality}_pct": flag for modality, flag in PRESENCE_COLUMN.items() if flag}
_SYSTEM_KINDS = {SEGMENTS: "segments", MEDIA: "media", ENCODERS: "registry", MODELS: "models"}


def _table_kind(name: str) -> str:
    if name in _SYSTEM_KINDS:
        return _SYSTEM_KINDS[name]
    return "feature" if is_feature_table(name) else "other"


def table_counts(store: Store) -> list[dict]:
    """Every table with its kind and row count; system tables first, then feature tables."""
    names = store.table_names()
    system = [n for n in _SYSTEM_KINDS if n in names]
    rest = sorted(n for n in names if n not in _SYSTEM_KINDS)
    return [{"table": n, "kind": _table_kind(n), "rows": store.count(n)} for n in system + rest]


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _coverage_row(label: str, flags: pa.Table) -> dict:
    rows = flags.num_rows
    row = {"color": label, "segments": rows}
    for key, column in _COVERAGE_FLAGS.items():
        row[key] = _pct(int(pc.sum(flags.column(column)).as_py() or 0), rows)
    return row


def coverage(store: Store) -> list[dict]:
    """Per colour (taxonomy order, colours with segments only) and a final "all" row."""
    if not store.has_table(SEGMENTS):
        return []
    flags = store.read(SEGMENTS, columns=["color", *_COVERAGE_FLAGS.values()])
    if flags.num_rows == 0:
        return []
    colors = flags.column("color")
    present = set(colors.to_pylist())
    ordered = [c for c in COLORS if c in present] + sorted(present - set(COLORS))
    rows = [_coverage_row(c, flags.filter(pc.equal(colors, c))) for c in ordered]
    return rows + [_coverage_row("all", flags)]


def store_info(store: Store) -> dict:
    """{"uri", "tables": [{table, kind, rows}], "coverage": [{color, segments, audio_pct, ...}],
    "coalesced": MIDI-input coverage before/after transcription fills it (featurestore.coverage)}."""
    return {"uri": store.uri, "tables": table_counts(store), "coverage": coverage(store),
            "coalesced": coalesced_coverage(store)}
