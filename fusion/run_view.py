"""A stored run read back for viewing: inputs, metrics, curves, confusion matrices and the rows it got wrong.

Reads only the run's JSON files and validation predictions (`fusion.layout`
names them): no weights and no torch, so listing and viewing runs
stays quick. The explorer and `chromatic report --html` both draw from this.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from featurestore.registry import ModelRecord, get_model_record, list_model_records
from featurestore.schemas import SEGMENTS
from featurestore.store import Store, sql_in
from featurestore.taxonomy import COLORS, DIMENSIONS, MODES, TaxonomyError, parse_modes, single_mode_index
from fusion.errors import ModelError
from fusion.layout import HISTORY, METRICS, VAL_PREDICTIONS, read_manifest
from fusion.metrics import confusion_matrix

# Wrong validation rows listed per run, most confident mistakes first.
MAX_WRONG_ROWS = 200


@dataclass(frozen=True)
class RunView:
    run_id: str
    run_dir: Path
    manifest: dict
    metrics: dict
    history: list[dict]
    confusion: dict[str, dict]  # head -> {"labels": [...], "matrix": [[int]]}
    wrong: list[dict]  # validation rows whose colour was predicted wrong
    wrong_total: int

    @property
    def inputs(self) -> dict[str, str]:
        return {i["name"]: i["spec"] for i in self.manifest.get("inputs", [])}

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "run_dir": str(self.run_dir), "inputs": self.inputs,
                "training": self.manifest.get("training", {}), "best_epoch": self.manifest.get("best_epoch"),
                "created_at": self.manifest.get("created_at"), "metrics": self.metrics, "history": self.history,
                "confusion": self.confusion, "wrong": self.wrong, "wrong_total": self.wrong_total}


def run_summaries(store: Store) -> list[dict]:
    """Every registered run, oldest first: id, inputs, training settings and overall metrics."""
    return [_summary(record) for record in list_model_records(store)]


def config_group(config: dict) -> str:
    """Equal for runs trained with one configuration (seed, split, epochs, ...), like the rows of one `compare`."""
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _summary(record: ModelRecord) -> dict:
    return {"run_id": record.run_id, "created_at": record.created_at.isoformat(), "inputs": record.inputs,
            "group": config_group(record.config),
            "fusion": record.config.get("fusion"), "epochs": record.config.get("epochs"),
            "seed": record.config.get("seed"), "metrics": record.metrics}


def load_run_view(store: Store, run_id: str) -> RunView:
    """Everything a run page shows; ModelError when the run's files are missing."""
    directory = Path(get_model_record(store, run_id).artifact_path)
    manifest = read_manifest(directory)
    metrics = _read_json(directory / METRICS, run_id)
    history = _read_json(directory / HISTORY, run_id)
    predictions = directory / VAL_PREDICTIONS
    if not predictions.exists():
        raise ModelError(f"run {run_id} has no {predictions.name} in {directory}; re-train it to view its predictions")
    rows = pq.read_table(predictions, columns=["segment_id", "song_id", "color", "color_probs", *_mode_probs()])
    labels = _segment_rows(store, rows.column("segment_id").to_pylist())
    confusion = _confusions(rows, _mode_truth(labels, rows.column("segment_id").to_pylist()))
    wrong = [{**row, "has_audio": bool(labels.get(row["segment_id"], {}).get("has_audio"))}
             for row in _wrong_rows(rows)]
    return RunView(run_id, directory, manifest, metrics, history, confusion, wrong[:MAX_WRONG_ROWS], len(wrong))


def _read_json(path: Path, run_id: str):
    if not path.exists():
        raise ModelError(f"run {run_id} is incomplete: {path} is missing")
    return json.loads(path.read_text())


def _mode_probs() -> list[str]:
    return [f"{dimension}_probs" for dimension in DIMENSIONS]


def _probs(rows, column: str) -> np.ndarray:
    values = rows.column(column).combine_chunks()
    return np.asarray(values.flatten(), dtype=np.float32).reshape(len(values), values.type.list_size)


def _segment_rows(store: Store, segment_ids: list[str]) -> dict[str, dict]:
    if not segment_ids:
        return {}
    found = store.read(SEGMENTS, ["segment_id", "has_audio", *DIMENSIONS], where=sql_in("segment_id", segment_ids))
    return {row["segment_id"]: row for row in found.to_pylist()}


def _mode_truth(labels: dict[str, dict], segment_ids: list[str]) -> dict[str, np.ndarray]:
    """Single-mode target index per dimension (-1: no single answer, or the segment is gone)."""
    truth = {}
    for dimension in DIMENSIONS:
        truth[dimension] = np.array([_single(dimension, labels.get(sid, {}).get(dimension)) for sid in segment_ids],
                                    dtype=np.int64)
    return truth


def _single(dimension: str, value: str | None) -> int:
    try:
        return single_mode_index(dimension, parse_modes(dimension, value))
    except TaxonomyError:
        return -1


def _color_truth(rows) -> np.ndarray:
    return np.array([COLORS.index(c) if c in COLORS else -1 for c in rows.column("color").to_pylist()], dtype=np.int64)


def _confusions(rows, truth: dict[str, np.ndarray]) -> dict[str, dict]:
    out = {}
    for dimension in DIMENSIONS:
        predicted = _probs(rows, f"{dimension}_probs").argmax(axis=1)
        matrix = confusion_matrix(truth[dimension], predicted, len(MODES[dimension]))
        out[dimension] = {"labels": list(MODES[dimension]), "matrix": matrix.tolist()}
    predicted = _probs(rows, "color_probs").argmax(axis=1)
    matrix = confusion_matrix(_color_truth(rows), predicted, len(COLORS))
    out["color"] = {"labels": list(COLORS), "matrix": matrix.tolist()}
    return out


def _wrong_rows(rows) -> list[dict]:
    """Validation rows whose predicted colour is not the true one, most confident first."""
    probs = _probs(rows, "color_probs")
    predicted = probs.argmax(axis=1)
    truth = _color_truth(rows)
    ids, songs = rows.column("segment_id").to_pylist(), rows.column("song_id").to_pylist()
    wrong = np.flatnonzero(predicted != truth)
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")]
    return [{"segment_id": ids[i], "song_id": songs[i], "color": COLORS[truth[i]] if truth[i] >= 0 else None,
             "predicted": COLORS[predicted[i]], "confidence": round(float(probs[i, predicted[i]]), 4),
             "true_prob": round(float(probs[i, truth[i]]), 4) if truth[i] >= 0 else None} for i in wrong]


def compare_views(store: Store, run_ids: list[str]) -> list[dict]:
    """Runs side by side: inputs, settings and the overall and per-subset metrics of each."""
    if not run_ids:
        raise ModelError("no runs to compare; pick two or more run ids (see the runs list)")
    views = [load_run_view(store, run_id) for run_id in run_ids]
    return [{"run_id": v.run_id, "inputs": v.inputs, "training": v.manifest.get("training", {}),
             "overall": v.metrics.get("overall", {}), "subsets": v.metrics.get("subsets", {}),
             "per_color": v.metrics.get("per_color", {}), "confusion": v.confusion["color"]} for v in views]
