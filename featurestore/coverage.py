"""Which feature tables a store holds, and how much of each colour they cover.

Backs `chromatic versions`: coverage is the share of segments (overall and per
colour) whose row in the table has a vector, so a table that is missing Blue's
MIDI is visible before anyone trains on it.

Coalesced coverage: a MIDI tensor table and an audio tensor table of the same
shape (a piano roll and a transcribed roll) can feed one input together
(`--midi pianoroll:v1|basicpitch:v1`, see featurestore/join.py); for each such
pair, how many segments gain a MIDI input through the audio table, per colour.
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
    """One plain dict per feature table (registered or not), sorted by table name.

    A table that can fill another's gaps carries them under "coalesced" (see the module doc)."""
    records = {r.table_name: r for r in list_encoder_records(store)}
    names = sorted(set(records) | set(feature_table_names(store)))
    colors = segment_colors(store)
    versions = [version_info(store, name, records.get(name), colors) for name in names]
    pairs = coalesced_coverage(store, colors)
    for info in versions:
        info["coalesced"] = [p for p in pairs if p["tables"][-1] == info["table"]]
    return versions


def coalesced_coverage(store: Store, colors: dict[str, str] | None = None) -> list[dict]:
    """Per shape-compatible (MIDI table, audio table) pair: MIDI-input coverage before/after coalescing."""
    colors = segment_colors(store) if colors is None else colors
    tensors = [r for r in list_encoder_records(store) if r.kind == "tensor" and store.has_table(r.table_name)]
    pairs = [(m, a) for m in tensors if m.modality == "midi" for a in tensors
             if a.modality == "audio" and tuple(a.shape) == tuple(m.shape)]
    present: dict[str, set[str]] = {}
    out = []
    for midi, audio in pairs:
        for record in (midi, audio):
            if record.table_name not in present:
                present[record.table_name] = store.keys(record.table_name, where="present = true")
        before = present[midi.table_name]
        after = before | present[audio.table_name]
        gained = Counter(colors[sid] for sid in after - before if sid in colors)
        out.append({
            "input": "midi", "spec": f"{midi.spec}|{audio.spec}", "tables": [midi.table_name, audio.table_name],
            "gained": sum(gained.values()), "gained_by_color": dict(gained),
            "before": coverage(before, colors), "after": coverage(after, colors),
        })
    return out


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
