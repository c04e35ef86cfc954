"""Export a run's fusion model to one self-contained ONNX file, checked against torch.

`export_onnx(run)` writes `<run dir>/model.onnx` with the torch.onnx dynamo
exporter (the TorchScript exporter cannot lower the piano-roll CNN's adaptive
pooling when the roll is smaller than its 4 x 4 output). The file:

* holds every weight inline (`external_data=False`): one file to copy around;
* has a dynamic batch axis on every input and output;
* takes, in the manifest's `input_names` order, per input a float32 value
  tensor `{input}_values` [B, *shape] and a bool mask `{input}_mask` [B]
  (false = absent: the model's learned null embedding is used);
* returns `temporal`, `spatial`, `ontological`, `color` (probabilities, label
  order in the manifest's `labels`) and `fused` (the penultimate embedding).

Before the file replaces any earlier export it must match torch on a batch
holding every mask pattern (2^n for n inputs, random values), within
`PARITY_TOLERANCE` max abs difference over all outputs; otherwise ModelError.
What was exported and the measured difference go to the manifest's `export`.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from featurestore.objectstore import StoreOptions, is_local
from featurestore.store import Store
from fusion.errors import ModelError
from fusion.layout import MANIFEST, ONNX_FILE, ONNX_OUTPUT_NAMES, read_manifest, write_manifest
from fusion.model import FusionModel, example_inputs
from fusion.runs import Run, fetch_run_dir, load_run_dir, publish_run
DEFAULT_OPSET = 18
PARITY_TOLERANCE = 1e-4
ROWS_PER_PATTERN = 2  # random rows per mask pattern in the parity batch
_PARTIAL_SUFFIX = ".partial"


def export_onnx(run: Run | str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write `model.onnx` into the run directory; returns its path. See the module doc."""
    run = run if isinstance(run, Run) else load_run_dir(Path(run))
    model = run.model.eval()
    final = run.run_dir / ONNX_FILE
    partial = run.run_dir / (ONNX_FILE + _PARTIAL_SUFFIX)
    before = set(os.listdir(run.run_dir))
    try:
        _torch_export(model, partial, opset)
        _require_self_contained(partial, set(os.listdir(run.run_dir)) - before - {partial.name})
        diff, rows = parity_max_abs_diff(model, partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if not diff <= PARITY_TOLERANCE:
        partial.unlink(missing_ok=True)
        raise ModelError(
            f"the ONNX export of {run.run_id} differs from the torch model by {diff:.3g} (max abs, over "
            f"{rows} rows covering every mask pattern), above the {PARITY_TOLERANCE:g} tolerance; "
            f"the previous {ONNX_FILE} (if any) was kept. Try another opset (--opset) or torch version"
        )
    os.replace(partial, final)
    _record_export(run, final, opset, diff, rows)
    return final


def export_stored_run(run: str, store_uri: str | None, options: StoreOptions, **settings) -> Path:
    """`chromatic export`: a local run directory, or run `run` of the store (an object store's is
    fetched, exported, and published back). Returns the local path of the export."""
    if is_local(run) and (Path(run) / MANIFEST).is_file():
        return export_onnx(Path(run), **settings)
    store = Store.open(store_uri, create=False, options=options)
    run_id = run.rstrip("/").rsplit("/", 1)[-1]
    directory = fetch_run_dir(store, run_id)
    final = export_onnx(directory, **settings)
    publish_run(store, run_id, directory)
    return final


def export_info(run_dir: str | Path) -> dict:
    """The manifest's record of the last export (empty when the run was never exported)."""
    return read_manifest(run_dir).get("export", {})


def _torch_export(model: FusionModel, path: Path, opset: int) -> None:
    names = model.input_names
    batch = torch.export.Dim("batch", min=1)
    # forward(*tensors) is one variadic argument to torch.export: its shapes nest in a 1-tuple.
    dynamic = (tuple({0: batch} for _ in names),)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it warns about unrelated missing torchvision ops
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, example_inputs(model.config, batch=2), str(path), dynamo=True, external_data=False,
                input_names=names, output_names=list(ONNX_OUTPUT_NAMES), opset_version=opset,
                dynamic_shapes=dynamic, verbose=False,
            )
    except Exception as exc:  # noqa: BLE001 - the exporter raises many unrelated types
        raise ModelError(f"torch.onnx.export failed for opset {opset}: {type(exc).__name__}: {exc}") from exc
    finally:
        exporter_log.setLevel(level)


def _require_self_contained(path: Path, new_files: set[str]) -> None:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in _all_tensors(proto) if onnx.external_data_helper.uses_external_data(t)]
    if external or new_files:
        raise ModelError(
            f"the export is not self-contained: tensors stored outside the file: {external or 'none'}; "
            f"extra files written: {sorted(new_files) or 'none'}. The model may exceed ONNX's 2 GB inline limit"
        )


def _all_tensors(proto):
    graphs = [proto.graph] + [f for f in proto.functions]
    while graphs:
        graph = graphs.pop()
        yield from getattr(graph, "initializer", [])
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                graphs += ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)


def parity_inputs(model: FusionModel, seed: int = 0) -> list[np.ndarray]:
    """`forward` arguments as numpy: ROWS_PER_PATTERN random rows for every mask pattern."""
    specs = model.config.inputs
    patterns = np.array(list(itertools.product((False, True), repeat=len(specs))), dtype=bool)
    masks = np.repeat(patterns, ROWS_PER_PATTERN, axis=0)
    rng = np.random.default_rng(seed)
    out = []
    for i, spec in enumerate(specs):
        shape = (len(masks), *spec.shape)
        # Piano-roll-like tensors live in [0, 1]; embedding vectors are centred.
        values = rng.random(shape) if spec.kind == "tensor" else rng.standard_normal(shape)
        out += [values.astype(np.float32), masks[:, i].copy()]
    return out


def parity_max_abs_diff(model: FusionModel, onnx_path: Path, seed: int = 0) -> tuple[float, int]:
    """(max abs difference torch vs onnxruntime over every output, rows compared).

    The every-pattern batch is run whole and its first row alone, so batch size 1 is covered too.
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inputs = parity_inputs(model, seed)
    worst = 0.0
    for rows in (slice(None), slice(0, 1)):
        feed = [array[rows] for array in inputs]
        with torch.no_grad():
            expected = [t.numpy() for t in model(*(torch.from_numpy(a) for a in feed))]
        got = session.run(list(ONNX_OUTPUT_NAMES), dict(zip(model.input_names, feed)))
        for want, have in zip(expected, got):
            if want.shape != have.shape:
                raise ModelError(f"the ONNX model returns shape {have.shape} where torch returns {want.shape}")
            worst = max(worst, float(np.max(np.abs(want - have))))
    return worst, len(inputs[1]) + 1


def _record_export(run: Run, path: Path, opset: int, diff: float, rows: int) -> None:
    import onnxruntime

    manifest = read_manifest(run.run_dir)
    manifest["export"] = {
        "file": ONNX_FILE,
        "bytes": path.stat().st_size,
        "opset": opset,
        "exporter": "torch.onnx.export(dynamo=True, external_data=False)",
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "input_names": run.model.input_names,
        "output_names": list(ONNX_OUTPUT_NAMES),
        "mask_dtype": "bool",
        "dynamic_axes": "batch (axis 0 of every input and output)",
        "parity_max_abs_diff": diff,
        "parity_tolerance": PARITY_TOLERANCE,
        "parity_rows": rows,
        "mask_patterns": 2 ** len(run.model.config.inputs),
        "exported_at": datetime.now(timezone.utc).isoformat(),
    }
    manifest.setdefault("artifacts", {})["onnx"] = ONNX_FILE
    write_manifest(run.run_dir, manifest)
    run.manifest.clear()
    run.manifest.update(manifest)
