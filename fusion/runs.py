"""A training run's artifacts under the store, its `models` registry row, and loading it back.

Where the files go is fusion/layout.py. The manifest holds everything needed to
rebuild the inputs exactly: feature tables, Lance versions, encoder identities,
input/output names and label order, training config, split. Artifacts are
written into `models/.partial-<run_id>/` and renamed into place, then the
registry row is written, so a run listed in `models` is always complete and an
interrupted save leaves no half-registered run (a killed one leaves at most a
`.partial-` directory, which `chromatic doctor` finds). Before the rename the
run pins the table versions it read (featurestore/pins.py).
Files are written in a local directory (the store itself when it is local,
its cache otherwise) and published to the store's URI before the registry row.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from featurestore.join import JoinResult, JoinSource
from featurestore.pins import pin_versions, unpin
from featurestore.registry import PARTIAL_RUN_PREFIX, ModelRecord, list_model_records, put_model_record
from featurestore.store import Store
from fusion.errors import ModelError
from fusion.layout import (
    HEAD_LABELS,
    HEADS,
    HISTORY,
    MANIFEST,
    METRICS,
    REPORT,
    RUNS_DIR,
    VAL_MIDI_CANDIDATES,
    VAL_PREDICTIONS,
    WEIGHTS,
    is_complete_run,
    read_manifest,
    run_dir,
    write_json,
    write_manifest,
)
from fusion.metrics import Predictions
from fusion.ensemble import describe, model_checkpoint, model_from_checkpoint
from fusion.report import write_report

MANIFEST_FORMAT = 2  # 2: per-input `tables` (coalesced inputs) replace the single table's fields


@dataclass
class RunContents:
    """What a finished training run hands over to be written."""

    model: torch.nn.Module  # FusionModel or EnsembleModel (fusion/ensemble.py)
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
    model: torch.nn.Module  # FusionModel or EnsembleModel, in eval mode
    metrics: dict
    history: list[dict]

    @property
    def inputs(self) -> dict[str, str]:
        """{input name: "encoder:version"} in the model's input order."""
        return {i["name"]: i["spec"] for i in self.manifest["inputs"]}

    def input_record(self, name: str) -> dict:
        return next(i for i in self.manifest["inputs"] if i["name"] == name)

    def require_same_encoders(self, joined: JoinResult, consequence: str) -> None:
        """ModelError (ending in `consequence`) when a joined table now holds another encoder config."""
        for source in joined.sources.values():
            record = self.input_record(source.input)
            trained = {t["table"]: t["fingerprint"] for t in record.get("tables") or [record]}  # format 1: one table
            for table in source.tables:
                if table.fingerprint != trained.get(table.table):
                    raise ModelError(
                        f"{table.table} now holds another encoder config (fingerprint {table.fingerprint}; run "
                        f"{self.run_id} was trained on {trained.get(table.table)}); {consequence}"
                    )


def new_run_id(inputs: dict[str, str], config: dict) -> str:
    """`run-YYYYmmdd-HHMMSS-<hash>`; the hash covers inputs, config and the clock's nanoseconds."""
    now = datetime.now(timezone.utc)
    ident = json.dumps({"inputs": inputs, "config": config, "ns": now.timestamp()}, sort_keys=True, default=str)
    return f"run-{now:%Y%m%d-%H%M%S}-{hashlib.sha1(ident.encode()).hexdigest()[:6]}"


def save_run(store: Store, run_id: str, contents: RunContents) -> Path:
    """Pin the versions read, write every artifact aside, move it into place, then the registry row.

    Any failure (or Ctrl-C) on the way removes the partial directory and the pins.
    """
    directory = run_dir(store, run_id, create=False)
    partial = directory.with_name(PARTIAL_RUN_PREFIX + run_id)
    partial.mkdir(parents=True)
    try:
        pins = pin_versions(store, run_id, contents.lance_versions)
        manifest = build_manifest(run_id, contents)
        manifest["table_identities"] = {table: pin.identity for table, pin in pins.items()}
        _write_artifacts(partial, manifest, contents)
        partial.rename(directory)
        _register(store, run_id, directory, manifest, contents)
    except BaseException:
        shutil.rmtree(directory if directory.exists() else partial, ignore_errors=True)
        unpin(store, run_id, contents.lance_versions)
        raise
    return directory


def _write_artifacts(directory: Path, manifest: dict, contents: RunContents) -> None:
    torch.save(model_checkpoint(contents.model), directory / WEIGHTS)
    write_manifest(directory, manifest)
    write_json(directory / METRICS, contents.metrics)
    write_json(directory / HISTORY, contents.history)
    write_val_predictions(directory / VAL_PREDICTIONS, contents.pred, contents.fused)
    if contents.candidates is not None:
        write_val_predictions(directory / VAL_MIDI_CANDIDATES, *contents.candidates)
    write_report(directory / REPORT, contents.history, contents.pred, contents.metrics)


def _register(store: Store, run_id: str, directory: Path, manifest: dict, contents: RunContents) -> None:
    record = ModelRecord(
        run_id=run_id,
        inputs={i["name"]: i["spec"] for i in manifest["inputs"]},
        feature_tables={t["table"]: t["lance_version"] for i in manifest["inputs"] for t in i["tables"]},
        config=contents.train_config,
        metrics=contents.metrics["overall"],
        artifact_path=publish_run(store, run_id, directory),
    )
    put_model_record(store, record)


def publish_run(store: Store, run_id: str, directory: Path) -> str:
    """Put a run's local files at the store's URI (nothing to copy for a local store); returns where."""
    return store.publish(directory, RUNS_DIR, run_id)


def build_manifest(run_id: str, contents: RunContents) -> dict:
    config = contents.model.config
    inputs = []
    for spec in config.inputs:
        source = contents.sources[spec.name]
        # "spec" is the input as given (a coalesced one names every table); "tables" holds each
        # table's identity, the Lance version read and the rows it filled: the scorer routes by it.
        inputs.append({
            "name": spec.name, "spec": source.spec, "kind": source.kind, "shape": list(source.shape),
            "dtype": source.dtype, "present": source.present, "tables": [t.to_dict() for t in source.tables],
            "value_input": f"{spec.name}_values", "mask_input": f"{spec.name}_mask",
        })
    summary = dict(contents.summary)
    return {
        "format": MANIFEST_FORMAT,
        "run_id": run_id,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "inputs": inputs,
        "lance_versions": contents.lance_versions,
        "input_names": contents.model.input_names,
        "labels": {head: list(labels) for head, labels in HEAD_LABELS.items()},
        "model": config.to_dict(),
        **({"ensemble": describe(contents.model)} if describe(contents.model) else {}),
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
        **{f"{head}_probs": fixed_list(pred.probs[head]) for head in HEADS},
        **{f"{name}_mask": pa.array(mask, pa.bool_()) for name, mask in pred.present.items()},
        "fused_embedding": fixed_list(fused.numpy()),
    }
    pq.write_table(pa.table(columns), path)


def load_run(store: Store, run_id: str) -> Run:
    """A stored run with its model rebuilt from `model.pt` (eval mode); fetched first from an object store."""
    return load_run_dir(fetch_run_dir(store, run_id))


def fetch_run_dir(store: Store, run_id: str) -> Path:
    """A local directory holding the run's files: the store's own, or a fresh copy in its cache."""
    if not all(store.files.exists(RUNS_DIR, run_id, name) for name in (MANIFEST, WEIGHTS)):
        known = ", ".join(r.run_id for r in list_model_records(store)) or "(none)"
        raise ModelError(f"no complete run {run_id!r} under {store.files.uri(RUNS_DIR)}; known runs: {known}")
    return store.files.download(run_dir(store, run_id), RUNS_DIR, run_id)


def load_run_dir(directory: Path) -> Run:
    """A run from its directory alone (e.g. one copied out of the store); model in eval mode."""
    directory = Path(directory)
    if not is_complete_run(directory):
        raise ModelError(f"{directory} is not a complete run directory: it needs {MANIFEST} and {WEIGHTS}")
    manifest = read_manifest(directory)
    run_id = manifest.get("run_id", directory.name)
    checkpoint = torch.load(directory / WEIGHTS, map_location="cpu", weights_only=True)
    model = model_from_checkpoint(checkpoint).eval()
    metrics = json.loads((directory / METRICS).read_text())
    history = json.loads((directory / HISTORY).read_text())
    return Run(run_id, directory, manifest, model, metrics, history)
