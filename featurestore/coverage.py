"""Which feature tables a store holds, and how much of each colour they cover.

Backs `chromatic versions`: coverage is the share of segments (overall and per
colour) whose row in the table has a vector, so a table that is missing Blue's
MIDI is visible before anyone trains on it.
"""

from __future__ import annotations

from collections import Counter

from featurestore.feature_table import PRESENT, feature_counts, feature_table_names
from featurestore.lineage import stale_counts
from featurestore.registry import EncoderRecord, list_encoder_records
from featurestore.schemas import SEGMENTS, FeatureTableName, vector_shape
from featurestore.store import Store
from featurestore.taxonomy import COLORS


def list_versions(store: Store) -> list[dict]:
    """One plain dict per feature table (registered or not), sorted by table name."""
    records = {r.table_name: r for r in list_encoder_records(store)}
    names = sorted(set(records) | set(feature_table_names(store)))
    colors = segment_colors(store)
    return [version_info(store, name, records.get(name), colors) for name in names]


def segment_colors(store: Store) -> dict[str, str]:
    if not store.has_table(SEGMENTS):
        return {}
    table = store.read(SEGMENTS, columns=["segment_id", "color"])
    return dict(zip(table.column("segment_id").to_pylist(), table.column("color").to_pylist()))


def version_info(store: Store, name: str, record: EncoderRecord | None, colors: dict[str, str]) -> dict:
    """Identity (from the registry row) plus counts and coverage (from the table itself)."""
    parsed = FeatureTableName.parse(name)
    exists = store.has_table(name)
    present = store.keys(name, where=PRESENT)
    info = {
        "table": name,
        "modality": parsed.modality,
        "encoder": parsed.encoder,
        "version": parsed.version,
        "kind": record.kind if record else None,
        "shape": list(record.shape if record else vector_shape(store.table(name).schema)),
        "dtype": record.dtype if record else None,
        "params": record.params_dict if record else None,
        "model_id": record.model_id if record else None,
        "state": (record.state if exists else "missing table") if record else "unregistered",
        **feature_counts(store, name),
        "created_at": record.created_at.isoformat() if record and record.created_at else None,
        **_lineage_counts(store, name, parsed.modality, exists),
    }
    info.update(coverage(present, colors))
    return info


def _lineage_counts(store: Store, name: str, modality: str, exists: bool) -> dict:
    """Rows computed from inputs that changed since (`stale`), or written before lineage (`unverified`)."""
    if not exists or not store.has_table(SEGMENTS):
        return {"stale": 0, "unverified": 0}
    counts = stale_counts(store, name, modality)
    return {"stale": counts.stale, "unverified": counts.unrecorded}


def coverage(present: set[str], colors: dict[str, str]) -> dict:
    """% of segments with a vector: overall and per colour (taxonomy order)."""
    totals = Counter(colors.values())
    covered = Counter(color for sid, color in colors.items() if sid in present)
    order = [c for c in COLORS if c in totals] + sorted(c for c in totals if c not in COLORS)
    return {
        "coverage_pct": _pct(sum(covered.values()), len(colors)),
        "coverage_pct_by_color": {c: _pct(covered[c], totals[c]) for c in order},
    }


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0
