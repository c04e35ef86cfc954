"""The fused space: a run's fused embeddings of every segment, stored as a searchable feature table.

`embed_run(store, run_id)` joins the run's inputs at their latest Lance
versions (so segments ingested after training are embedded too; the encoder
fingerprints must still be the run's), feeds every segment through the model,
missing modalities through the null path, and writes `fused.<run id>.v1`: one
row per segment, the fused (penultimate) embedding L2-normalised so cosine and
dot-product search agree. It uses the torch model (model.pt), which the ONNX
export matches within its parity tolerance; torch keeps this working for runs
that were never exported.

The registry row names the run as the encoder (characters outside
[A-Za-z0-9_-] become "_"), and its params record the run id, inputs and the
Lance versions read. A segment whose input held non-finite values is embedded
with that input masked (as training did) and keeps a `status` saying so.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import torch

from featurestore.feature_table import feature_rows, finish_table
from featurestore.join import InputArrays, input_arrays, join
from featurestore.registry import EncoderRecord, claim_version
from featurestore.schemas import FeatureTableName, feature_schema
from featurestore.store import Store
from fusion.layout import WEIGHTS
from fusion.runs import Run, load_run

FUSED_MODALITY = "fused"
FUSED_VERSION = "v1"
CODE_VERSION = "1"  # bump when the embedding computation changes
ROWS_PER_WRITE = 2048
ROWS_PER_FORWARD = 256
_ZERO_NORM = 1e-12

ProgressFn = Callable[[int, int], None]  # (segments done, total)


def fused_table_name(run_id: str) -> str:
    """`fused.<run id>.v1`, the run id made a valid name part."""
    part = re.sub(r"[^A-Za-z0-9_\-]", "_", run_id)
    return str(FeatureTableName.parse(f"{FUSED_MODALITY}.{part}.{FUSED_VERSION}"))


def embed_run(store: Store, run_id: str, progress: ProgressFn | None = None) -> str:
    """Write the run's L2-normalised fused embedding of every segment; returns the table name."""
    run = load_run(store, run_id)
    joined = join(store, run.inputs)
    run.require_same_encoders(joined, "its fused space cannot be built from this store")
    arrays = {
        name: input_arrays(joined, name, np.float16 if source.kind == "tensor" else np.float32)
        for name, source in joined.sources.items()
    }
    segment_ids = joined.table.column("segment_id").to_pylist()
    record = claim_version(store, _record(run))
    name = record.table_name
    store.ensure_table(name, feature_schema(record.shape, "float32"))
    with store.writer(name):
        for start in range(0, len(segment_ids), ROWS_PER_WRITE):
            rows = np.arange(start, min(start + ROWS_PER_WRITE, len(segment_ids)))
            vectors = _normalised(fused_embeddings(run, arrays, rows))
            ids = [segment_ids[i] for i in rows]
            store.upsert(name, _fused_rows(ids, vectors, _statuses(arrays, ids)))
            if progress:
                progress(int(rows[-1]) + 1, len(segment_ids))
        store.optimize(name)
    masked = {input_name: len(a.invalid_segments) for input_name, a in arrays.items()}
    params = {"run_id": run.run_id, "inputs": run.inputs, "lance_versions": joined.versions,
              "normalized": "l2", "masked_non_finite": masked}
    finish_table(store, record, complete=True, params=json.dumps(params, sort_keys=True))
    return name


def _record(run: Run) -> EncoderRecord:
    weights = hashlib.sha256((run.run_dir / WEIGHTS).read_bytes()).hexdigest()[:16]
    ident = {"run_id": run.run_id, "weights": weights, "code_version": CODE_VERSION, "normalized": "l2"}
    name = FeatureTableName.parse(fused_table_name(run.run_id))
    return EncoderRecord(
        table_name=str(name), modality=FUSED_MODALITY, encoder=name.encoder, version=name.version,
        kind="vector", shape=(int(run.model.config.hidden_dims[-1]),), dtype="float32",
        params=json.dumps({"run_id": run.run_id}, sort_keys=True), model_id=run.run_id,
        weights_fingerprint=weights,
        fingerprint=hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16],
        code_version=CODE_VERSION,
    )


@torch.no_grad()
def fused_embeddings(run: Run, arrays: dict[str, InputArrays], rows: np.ndarray) -> np.ndarray:
    """The model's fused embedding [len(rows), D] (eval mode, float32) for rows of the join."""
    model = run.model.eval()
    chunks = []
    for start in range(0, len(rows), ROWS_PER_FORWARD):
        index = rows[start : start + ROWS_PER_FORWARD]
        tensors = []
        for spec in model.config.inputs:
            tensors.append(torch.from_numpy(arrays[spec.name].values[index]).to(torch.float32))
            tensors.append(torch.from_numpy(arrays[spec.name].mask[index]))
        chunks.append(model(*tensors)[-1].numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, model.config.hidden_dims[-1]), np.float32)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; an all-zero row (no direction) becomes NaN and is stored as missing."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > _ZERO_NORM, vectors / norms, np.nan).astype(np.float32)


def _statuses(arrays: dict[str, InputArrays], segment_ids: list[str]) -> list[str | None]:
    """Per segment: None, or which inputs were masked because their stored values were non-finite."""
    invalid = {name: set(a.invalid_segments) for name, a in arrays.items() if a.invalid_segments}
    out = []
    for sid in segment_ids:
        masked = [name for name, ids in invalid.items() if sid in ids]
        out.append(f"masked non-finite input(s): {', '.join(masked)}" if masked else None)
    return out


def _fused_rows(segment_ids: list[str], vectors: np.ndarray, statuses: list[str | None]) -> pa.Table:
    """An all-zero embedding (NaN after normalising) is stored as missing, with the reason."""
    zero = np.isnan(vectors).any(axis=1)
    status = [("error: fused embedding is all zeros, it has no direction" if z else s) for z, s in zip(zero, statuses)]
    return feature_rows(segment_ids, np.nan_to_num(vectors), ~zero, status)
