"""A training run's artifacts under the store, its `models` registry row, and loading it back.

Layout: `<store side dir>/models/<run_id>/` holds `model.pt` (state_dict +
FusionConfig), `manifest.json` (everything needed to rebuild the inputs exactly:
feature tables, Lance versions, encoder identities, input/output names and label
order, training config, split), `metrics.json`, `history.json`,
`val_predictions.parquet`, `val_midi_candidates.parquet` (the validation rows with
MIDI scored with MIDI alone, as the scorer scores a candidate; models with a MIDI
input only) and `report.png`. The registry row is written last,
so a run listed in `models` is always complete.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from featurestore.errors import ModelError
from featurestore.join import JoinSource
from featurestore.registry import ModelRecord, list_model_records, put_model_record
from featurestore.store import Store
from featurestore.taxonomy import COLORS, DIMENSIONS, MODES
from fusion.metrics import Predictions
from fusion.model import HEAD_SIZES, FusionConfig, FusionModel
from fusion.report import write_report

MANIFEST_FORMAT = 1
WEIGHTS, MANIFEST, METRICS, HISTORY = "model.pt", "manifest.json", "metrics.json", "history.json"
VAL_PREDICTIONS, REPORT = "val_predictions.parquet", "report.png"
VAL_MIDI_CANDIDATES = "val_midi_candidates.parquet"


@dataclass
class RunContents:
    """What a finished training run hands over to be written."""

    model: FusionModel
    sources: dict[str, JoinSource]  # input -> where it was read from (featurestore.join)
    lance_versions: dict[str, int]  # every table read, `segments` included
    train_config: dict
    pred: Predictions  # validation predictions of the kept (best) weights
    fused: torch.Tensor  # [N_val, D] fused embeddings, rows aligned with pred
    metrics: dict
    history: list[dict]
    summary: dict
    candidates: tuple[Predictions, torch.Tensor] | None = None  # the MIDI-candidate view and its fused embeddings


@dataclass
class Run:
    run_id: str
    run_dir: Path
    manifest: dict
    model: FusionModel  # in eval mode
    metrics: dict
    history: list[dict]

    @property
    def inputs(self) -> dict[str, str]:
        """{input name: "encoder:version"} in the model's input order."""
        return {i["name"]: i["spec"] for i in self.manifest["inputs"]}

    def input_record(self, name: str) -> dict:
        return next(i for i in self.manifest["inputs"] if i["name"] == name)


def new_run_id(inputs: dict[str, str], config: dict) -> str:
    """`run-YYYYmmdd-HHMMSS-<hash>`; the hash covers inputs, config and the clock's nanoseconds."""
    now = datetime.now(timezone.utc)
    ident = json.dumps({"inputs": inputs, "config": config, "ns": now.timestamp()}, sort_keys=True, default=str)
    return f"run-{now:%Y%m%d-%H%M%S}-{hashlib.sha1(ident.encode()).hexdigest()[:6]}"


def run_dir(store: Store, run_id: str) -> Path:
    return store.side_path("models", run_id, MANIFEST).parent


def save_run(store: Store, run_id: str, contents: RunContents) -> Path:
    """Write every artifact, then the registry row. Returns the run directory."""
    directory = run_dir(store, run_id)
    config = contents.model.config
    torch.save({"fusion_config": config.to_dict(), "state_dict": contents.model.state_dict()}, directory / WEIGHTS)
    manifest = build_manifest(run_id, contents)
    _write_json(directory / MANIFEST, manifest)
    _write_json(directory / METRICS, contents.metrics)
    _write_json(directory / HISTORY, contents.history)
    write_val_predictions(directory / VAL_PREDICTIONS, contents.pred, contents.fused)
    if contents.candidates is not None:
        write_val_predictions(directory / VAL_MIDI_CANDIDATES, *contents.candidates)
    write_report(directory / REPORT, contents.history, contents.pred, contents.metrics)
    record = ModelRecord(
        run_id=run_id,
        inputs={i["name"]: i["spec"] for i in manifest["inputs"]},
        feature_tables={i["table"]: i["lance_version"] for i in manifest["inputs"]},
        config=contents.train_config,
        metrics=contents.metrics["overall"],
        artifact_path=str(directory),
    )
    put_model_record(store, record)
    return directory


def build_manifest(run_id: str, contents: RunContents) -> dict:
    config = contents.model.config
    inputs = []
    for spec in config.inputs:
        source = contents.sources[spec.name].to_dict()
        source["params"] = json.loads(source["params"])
        source.pop("input")  # the entry's "name"
        inputs.append(
            {"name": spec.name, "spec": f"{source['encoder']}:{source['version']}", **source,
             "value_input": f"{spec.name}_values", "mask_input": f"{spec.name}_mask"}
        )
    summary = dict(contents.summary)
    return {
        "format": MANIFEST_FORMAT,
        "run_id": run_id,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "inputs": inputs,
        "lance_versions": contents.lance_versions,
        "input_names": contents.model.input_names,
        "labels": {**{d: list(MODES[d]) for d in DIMENSIONS}, "color": list(COLORS)},
        "model": config.to_dict(),
        "training": contents.train_config,
        "seed": contents.train_config["seed"],
        "best_epoch": summary.pop("best_epoch"),
        "split": {
            "by": "song_id",
            "val_fraction": contents.train_config["val_fraction"],
            "folds": contents.train_config.get("folds", 1),
            "fold": summary.pop("fold", 0),
            "seed": contents.train_config["seed"],
            "val_songs": summary.pop("val_songs"),
        },
        "data": summary,
        "artifacts": {"weights": WEIGHTS, "metrics": METRICS, "history": HISTORY,
                      "val_predictions": VAL_PREDICTIONS, "report": REPORT,
                      **({"val_midi_candidates": VAL_MIDI_CANDIDATES} if contents.candidates is not None else {})},
    }


def write_val_predictions(path: Path, pred: Predictions, fused: torch.Tensor) -> None:
    """segment_id, song_id, colour, per-head probabilities, the masks fed, and the fused embedding."""
    def fixed_list(array: np.ndarray) -> pa.Array:
        array = np.ascontiguousarray(array, dtype=np.float32)
        return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])

    columns = {
        "segment_id": pa.array(pred.segment_ids.tolist(), pa.string()),
        "song_id": pa.array(pred.song_ids.tolist(), pa.string()),
        "color": pa.array(pred.colors.tolist(), pa.string()),
        **{f"{head}_probs": fixed_list(pred.probs[head]) for head in HEAD_SIZES},
        **{f"{name}_mask": pa.array(mask, pa.bool_()) for name, mask in pred.present.items()},
        "fused_embedding": fixed_list(fused.numpy()),
    }
    pq.write_table(pa.table(columns), path)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def load_run(store: Store, run_id: str) -> Run:
    """A stored run with its model rebuilt from `model.pt` (eval mode)."""
    directory = store.side_dir / "models" / run_id
    if not (directory / MANIFEST).exists() or not (directory / WEIGHTS).exists():
        known = ", ".join(r.run_id for r in list_model_records(store)) or "(none)"
        raise ModelError(f"no complete run {run_id!r} under {directory.parent}; known runs: {known}")
    return load_run_dir(directory)


def load_run_dir(directory: Path) -> Run:
    """A run from its directory alone (e.g. one copied out of the store); model in eval mode."""
    directory = Path(directory)
    if not (directory / MANIFEST).exists() or not (directory / WEIGHTS).exists():
        raise ModelError(f"{directory} is not a complete run directory: it needs {MANIFEST} and {WEIGHTS}")
    manifest = json.loads((directory / MANIFEST).read_text())
    run_id = manifest.get("run_id", directory.name)
    checkpoint = torch.load(directory / WEIGHTS, map_location="cpu", weights_only=True)
    model = FusionModel(FusionConfig.from_dict(checkpoint["fusion_config"]))
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    metrics = json.loads((directory / METRICS).read_text())
    history = json.loads((directory / HISTORY).read_text())
    return Run(run_id, directory, manifest, model, metrics, history)
