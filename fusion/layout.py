"""Where a training run lives and what it holds; torch-free, so the ONNX scorer can read runs.

A run is `<store>/_chromatic/models/<run_id>/` (at the store's URI, `s3://…` included) holding `model.pt` (state_dict +
FusionConfig), `manifest.json` (everything needed to rebuild the inputs
exactly), `metrics.json`, `history.json`, `val_predictions.parquet`,
`val_midi_candidates.parquet` (models with a MIDI input: the validation rows
with MIDI, scored with MIDI alone as the scorer scores a candidate),
`report.png` and, once exported, `model.onnx`. The model's heads and their
label order come from the taxonomy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from featurestore.errors import StoreError
from featurestore.objectstore import RUNS_DIR, StoreOptions, files_at, is_local  # noqa: F401  (RUNS_DIR: re-exported)
from featurestore.taxonomy import COLORS, DIMENSIONS, MODES
from fusion.errors import ModelError

WEIGHTS, MANIFEST, METRICS, HISTORY = "model.pt", "manifest.json", "metrics.json", "history.json"
VAL_PREDICTIONS, REPORT, ONNX_FILE = "val_predictions.parquet", "report.png", "model.onnx"
VAL_MIDI_CANDIDATES = "val_midi_candidates.parquet"

# head -> its labels in output order: one head per taxonomy dimension, then the colour.
HEAD_LABELS: dict[str, tuple[str, ...]] = {**{d: MODES[d] for d in DIMENSIONS}, "color": COLORS}
HEADS: tuple[str, ...] = tuple(HEAD_LABELS)
ONNX_OUTPUT_NAMES: tuple[str, ...] = (*HEADS, "fused")
_PARTIAL_SUFFIX = ".partial"


def run_dir(store, run_id: str, create: bool = True) -> Path:
    """The directory of run `run_id` in `store` (a featurestore Store); made unless create=False."""
    if create:
        return store.side_path(RUNS_DIR, run_id, MANIFEST).parent
    return store.side_dir / RUNS_DIR / run_id


def is_complete_run(directory: Path) -> bool:
    return (directory / MANIFEST).exists() and (directory / WEIGHTS).exists()


def read_manifest(model_dir: str | Path, files=None) -> dict:
    """The manifest of a run directory, local or at an object-store URI (`files`: featurestore.objectstore)."""
    files = files or files_at(model_dir)
    try:
        if files.exists(MANIFEST):
            return json.loads(files.read_bytes(MANIFEST))
    except StoreError as exc:
        raise ModelError(f"cannot read the run at {model_dir}: {exc}") from exc
    raise ModelError(f"{model_dir} is not a model directory: it has no {MANIFEST}")


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_manifest(directory: Path, manifest: dict) -> None:
    """Replace the manifest whole: a reader never sees a half-written one."""
    final = Path(directory) / MANIFEST
    partial = final.with_name(MANIFEST + _PARTIAL_SUFFIX)
    write_json(partial, manifest)
    os.replace(partial, final)


def resolve_model_dir(run: str | Path, store_uri: str | None = None,
                      options: StoreOptions = StoreOptions()) -> str | Path:
    """A model directory as given (local, or `s3://…`), or where run id `run` of the store lives."""
    if not is_local(str(run)):
        return str(run)
    path = Path(run)
    if (path / MANIFEST).is_file():
        return path
    from featurestore.registry import get_model_record
    from featurestore.store import Store

    record = get_model_record(Store.open(store_uri, create=False, options=options), str(run))
    return Path(record.artifact_path) if is_local(record.artifact_path) else record.artifact_path
