"""Train a fusion model on a join of stored feature tables, and re-evaluate a stored run.

nanoGPT-style: the data sits in memory as numpy, batches are fancy-indexed
slices, and the loop below is the whole of training. No DataLoader: with the
arrays in memory, worker processes would only copy them (and lancedb needs
spawned, not forked, workers).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from encoders.device import require_device
from featurestore.join import join
from featurestore.pins import check_pins, pins_from_manifest
from featurestore.store import Store
from featurestore.taxonomy import DIMENSIONS
from fusion.candidates import inputs_fed_by
from fusion.dataset import FusionData, build_dataset, song_folds, split_by_song, val_index_for_songs
from fusion.errors import ModelError
from fusion.export import export_onnx
from fusion.metrics import Predictions, compute_metrics, metrics_block
from fusion.model import FUSIONS, HEAD_SIZES, FusionConfig, FusionModel, InputSpec, check_tensor_encoder
from fusion.runs import RunContents, load_run, new_run_id, publish_run, save_run

ProgressFn = Callable[[dict], None]  # called once per epoch with that epoch's history row


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10  # epochs without a better validation score before stopping
    val_fraction: float = 0.2  # the held-out share of songs when folds == 1
    folds: int = 1  # > 1: song-grouped K-fold, one run per fold (train_folds); val_fraction is then unused
    seed: int = 0
    fusion: str = "concat"
    tensor_encoder: str = "cnn2d"  # see FusionConfig.tensor_encoder
    modality_dropout: float = 0.15
    solo_dropout: float = 0.3  # see FusionConfig.solo_dropout (measured in BENCHMARKS.md "Model quality")
    device: str = "cpu"
    # CPU threads for torch; 0 keeps torch's default (one per core). On a CPU shared
    # with other busy jobs, 1 avoids threads waiting on each other (10x faster here).
    threads: int = 0
    export_onnx: bool = True  # also write model.onnx (fusion/export.py), parity-checked against torch

    def __post_init__(self):
        checks = {
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1, "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0, "patience": self.patience >= 1, "threads": self.threads >= 0,
            "folds": self.folds >= 1,
            "val_fraction": 0 < self.val_fraction < 1, "modality_dropout": 0 <= self.modality_dropout < 1,
            "solo_dropout": 0 <= self.solo_dropout <= 1,
        }
        bad = [f"{name}={getattr(self, name)!r}" for name, ok in checks.items() if not ok]
        if bad:
            raise ModelError(
                f"bad training config: {', '.join(bad)}; epochs, batch_size and patience must be >= 1, "
                "lr > 0, weight_decay and threads >= 0, folds >= 1, val_fraction in (0, 1), modality_dropout in [0, 1), solo_dropout in [0, 1]"
            )
        if self.fusion not in FUSIONS:
            raise ModelError(f"unknown fusion {self.fusion!r}; expected one of {', '.join(FUSIONS)}")
        check_tensor_encoder(self.tensor_encoder)


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    run_dir: Path
    metrics: dict
    history: list[dict]
    summary: dict = field(default_factory=dict)  # rows used/skipped, split sizes, inputs present


def train(store: Store, inputs: dict[str, str], config: TrainConfig, progress: ProgressFn | None = None) -> TrainResult:
    """Join `inputs` ({"audio": "clap:v1", ...}), train, keep the best epoch, write a run (one split: folds=1)."""
    if config.folds != 1:
        raise ModelError(f"train() trains one split but folds={config.folds}; use train_folds for K-fold runs")
    return train_folds(store, inputs, config, progress)[0]


def train_folds(store: Store, inputs: dict[str, str], config: TrainConfig,
                progress: ProgressFn | None = None) -> list[TrainResult]:
    """One run per fold of `config.folds` (song-grouped, stratified); the data is joined once."""
    with torch_threads(config.threads):
        device = require_device(config.device)
        joined = join(store, inputs)
        data = build_dataset(joined)
        splits = data_splits(data, config)
        summaries = [_summary(data, joined, train_idx, val_idx) for train_idx, val_idx in splits]
        sources, versions = joined.sources, joined.versions
        del joined  # its Arrow table holds a second copy of every vector
        results = []
        for fold, ((train_idx, val_idx), summary) in enumerate(zip(splits, summaries)):
            summary["fold"] = fold
            on_epoch = None if progress is None else (lambda row, k=fold: progress({**row, "fold": k}))
            results.append(_train_split(store, inputs, config, data, (sources, versions), (train_idx, val_idx),
                                        summary, device, on_epoch))
        return results


def data_splits(data: FusionData, config: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_index, val_index) per fold; one held-out split when config.folds == 1."""
    if config.folds > 1:
        splits = song_folds(data.song_ids, data.colors, config.folds, config.seed)
    else:
        splits = [split_by_song(data.song_ids, data.colors, config.val_fraction, config.seed)]
    if any(len(train_idx) == 0 or len(val_idx) == 0 for train_idx, val_idx in splits):
        raise ModelError(
            f"cannot split {len(data)} segments by song into train and validation; a colour needs at least "
            "two songs to appear on both sides: ingest more songs"
        )
    return splits


def _train_split(store, inputs, config: TrainConfig, data: FusionData, joined_identity, split, summary, device,
                 progress) -> TrainResult:
    """Train and save one run on one (train_index, val_index) split."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    (sources, versions), (train_idx, val_idx) = joined_identity, split
    model = FusionModel(model_config(sources, config))
    model.fit_input_statistics(data.values, data.masks, train_idx)
    model.to(device)
    history, summary["best_epoch"] = fit(model, data, train_idx, val_idx, config, progress)
    pred, logits = predict(model, data, val_idx, config.batch_size)
    candidates = predict_midi_candidates(model, data, val_idx, config.batch_size)
    metrics = run_metrics(pred, sources, None if candidates is None else candidates[0])
    run_id = new_run_id(inputs, {**asdict(config), "fold": summary["fold"]})
    contents = RunContents(model, sources, versions, asdict(config), pred, logits["fused"], metrics, history, summary,
                           candidates=None if candidates is None else (candidates[0], candidates[1]["fused"]))
    run_dir = save_run(store, run_id, contents)
    if config.export_onnx:  # after save_run: a failed export leaves the run intact for `chromatic export`
        export_onnx(run_dir)
        publish_run(store, run_id, run_dir)
    return TrainResult(run_id, run_dir, metrics, history, summary)


def model_config(sources: dict, config: TrainConfig) -> FusionConfig:
    """The model for a join's sources ({input: JoinSource}) under the training config's architecture fields."""
    specs = tuple(InputSpec(s.input, s.kind, s.shape) for s in sources.values())
    return FusionConfig(specs, fusion=config.fusion, modality_dropout=config.modality_dropout,
                        solo_dropout=config.solo_dropout, tensor_encoder=config.tensor_encoder)


def fit(model: FusionModel, data: FusionData, train_idx, val_idx, config: TrainConfig, progress=None):
    """The training loop; leaves the best epoch's weights in `model`. Returns (history, best_epoch).

    `val_idx` None: config.epochs epochs without validation or early stopping, the last epoch's weights kept
    (e.g. to refit on every training row for an epoch count chosen on held-out songs).
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    n_batches = max(1, len(train_idx) // config.batch_size)  # batches of batch_size..2*batch_size-1 rows
    history, best = [], (-1.0, 0, None)  # (score, epoch, weights)
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        total = 0.0
        for index in np.array_split(rng.permutation(train_idx), n_batches):
            logits, _ = model.forward_logits(*batch_tensors(model, data, index))
            loss = loss_fn(logits, data, index, logits["color"].device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        row = {"epoch": epoch, "train_loss": total / len(train_idx)}
        if val_idx is not None:
            pred, val_logits = predict(model, data, val_idx, config.batch_size)
            overall = metrics_block(pred)
            row.update(val_loss=loss_fn(val_logits, data, val_idx, "cpu").item(), val_mode_acc=overall["mode_acc"],
                       val_color_acc=overall["color_acc"])
        history.append({**row, "seconds": time.perf_counter() - started})
        if progress:
            progress(history[-1])
        score = validation_score(overall) if val_idx is not None else float(epoch)  # no validation: the last
        if score > best[0]:
            best = (score, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
        elif epoch - best[1] >= config.patience:
            break
    model.load_state_dict(best[2])
    return history, best[1]


def validation_score(overall: dict) -> float:
    """Early-stopping score: the mean of mode and colour accuracy (those that exist)."""
    parts = [overall[k] for k in ("mode_acc", "color_acc") if overall.get(k) is not None]
    return float(np.mean(parts)) if parts else 0.0


def batch_tensors(model: FusionModel, data: FusionData, index: np.ndarray) -> list[torch.Tensor]:
    """`forward` arguments for rows `index`: float32 values then bool mask, per input."""
    device = model.null_embeddings.device
    out = []
    for spec in model.config.inputs:
        out.append(torch.from_numpy(data.values[spec.name][index]).to(device, torch.float32))
        out.append(torch.from_numpy(data.masks[spec.name][index]).to(device))
    return out


def loss_fn(logits: dict[str, torch.Tensor], data: FusionData, index: np.ndarray, device) -> torch.Tensor:
    """KL to the soft mode targets for each dimension, plus cross-entropy for the colour."""
    loss = F.cross_entropy(logits["color"], torch.from_numpy(data.color_targets[index]).to(device))
    for dim in DIMENSIONS:
        target = torch.from_numpy(data.soft_targets[dim][index]).to(device)
        loss = loss + F.kl_div(F.log_softmax(logits[dim], dim=-1), target, reduction="batchmean")
    return loss


@torch.no_grad()
def predict(model: FusionModel, data: FusionData, index: np.ndarray, batch_size: int = 256):
    """(Predictions, {head: logits, "fused": embeddings}) for rows `index`, in eval mode, on CPU."""
    model.eval()
    chunks = []
    for start in range(0, len(index), batch_size):
        logits, fused = model.forward_logits(*batch_tensors(model, data, index[start : start + batch_size]))
        chunks.append({**{k: v.cpu() for k, v in logits.items()}, "fused": fused.cpu()})
    if not chunks:
        raise ModelError("no rows to predict on: the validation split is empty")
    logits = {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
    pred = Predictions(
        segment_ids=data.segment_ids[index], song_ids=data.song_ids[index], colors=data.colors[index],
        probs={h: F.softmax(logits[h], dim=-1).numpy() for h in HEAD_SIZES},
        targets={**{d: t[index] for d, t in data.mode_targets.items()}, "color": data.color_targets[index]},
        present={name: mask[index] for name, mask in data.masks.items()},
        has_lyrics=None if data.has_lyrics is None else data.has_lyrics[index],
    )
    return pred, logits


def predict_midi_candidates(model: FusionModel, data: FusionData, index: np.ndarray, batch_size: int = 256):
    """`predict` on the rows of `index` that have MIDI, fed MIDI alone: each row as ChromaticScorer scores a MIDI
    candidate. Every input with a MIDI table keeps its mask (a `midistats` input beside a piano-roll one: both),
    every other input, concept included, takes its null path. None when no input reads MIDI."""
    fed = inputs_fed_by("midi", {name: data.reads_of(name) for name in data.inputs})
    if not fed:
        return None
    rows = index[np.any([data.masks[name][index] for name in fed], axis=0)]
    if len(rows) == 0:
        return None
    alone = {name: mask if name in fed else np.zeros_like(mask) for name, mask in data.masks.items()}
    return predict(model, replace(data, masks=alone), rows, batch_size)


@contextmanager
def torch_threads(threads: int):
    """Run with `threads` torch CPU threads (0: leave torch's setting alone), then restore."""
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)




def _summary(data: FusionData, joined, train_idx, val_idx) -> dict:
    reasons: dict[str, int] = {}
    for _, reason in data.skipped:
        reasons[reason.split(":")[0]] = reasons.get(reason.split(":")[0], 0) + 1
    return {
        "segments": joined.table.num_rows, "used": len(data), "train": len(train_idx), "val": len(val_idx),
        "val_songs": sorted(set(data.song_ids[val_idx].tolist())),
        "present": {name: int(data.masks[name].sum()) for name in data.inputs},
        "incomplete_tables": [t.table for s in joined.sources.values() for t in s.tables if t.state != "complete"],
        "stale_rows": {t.table: t.stale_rows for s in joined.sources.values() for t in s.tables if t.stale_rows},
        "unverified_rows": {t.table: t.unverified_rows for s in joined.sources.values() for t in s.tables
                            if t.unverified_rows},
        "skipped": [{"segment_id": sid, "reason": reason} for sid, reason in data.skipped],
        "skipped_by_reason": reasons,
    }


@dataclass(frozen=True)
class EvalResult:
    run_id: str
    metrics: dict
    stored_metrics: dict
    moved_tables: dict[str, tuple[int, int]]  # table -> (recorded Lance version, current version)


def evaluate_run(store: Store, run_id: str, batch_size: int | None = None) -> EvalResult:
    """Re-join at the recorded Lance versions, rebuild the recorded split, run the stored weights.

    Batches default to the run's training batch size: float sums in other batch shapes differ in the last
    bits, which continuous metrics (calibration, match spread) would show.
    """
    run = load_run(store, run_id)
    batch_size = batch_size or run.manifest["training"]["batch_size"]
    recorded = run.manifest["lance_versions"]
    pins = pins_from_manifest(recorded, run.manifest.get("table_identities", {}))
    problems = check_pins(store, run_id, pins)
    if problems:
        raise ModelError(
            f"run {run_id} cannot be re-evaluated on the data it was trained on: " + "; ".join(problems)
            + ". Train a new run on the current tables (`chromatic train ...`)"
        )
    joined = join(store, run.inputs, versions=recorded)
    run.require_same_encoders(joined, "the run cannot be re-evaluated on this store")
    data = build_dataset(joined)
    val_idx = val_index_for_songs(data.song_ids, run.manifest["split"]["val_songs"])
    pred, _ = predict(run.model, data, val_idx, batch_size)
    candidates = predict_midi_candidates(run.model, data, val_idx, batch_size)
    moved = {t: (v, store.version(t)) for t, v in recorded.items() if store.version(t) != v}
    metrics = run_metrics(pred, joined.sources, None if candidates is None else candidates[0])
    return EvalResult(run_id, metrics, run.metrics, moved)


def run_metrics(pred: Predictions, sources: dict, candidates: Predictions | None = None) -> dict:
    """Validation metrics (with the MIDI-candidate view when there is one) plus, per input, the rows each table
    filled (coalesced inputs: per colour too)."""
    fills = {name: source.fills() for name, source in sources.items()}
    return {**compute_metrics(pred, candidates), "input_fills": fills}
