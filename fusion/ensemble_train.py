"""Training a deep ensemble (fusion/ensemble.py) on one training split: `TrainConfig.members` > 1.

1. Song-grouped inner folds of the training rows, one per member: member m trains on the songs outside fold
   m and early-stops on fold m, so no epoch is chosen on the validation rows the run reports.
2. With `calibrate`, per-head temperatures are fitted on those held-out rows: every training row is predicted
   once, by the member that did not train on its song (out-of-fold predictions).
3. With `refit` (the default), the members are trained again from new initialisations on every training row
   for the median of their best epochs; the ensemble keeps the refitted members. The inner members only
   chose that count and the temperatures: a fifth of the training songs is not left unused.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from featurestore.taxonomy import DIMENSIONS
from fusion.dataset import FusionData, song_folds
from fusion.ensemble import EnsembleModel, fit_temperature
from fusion.errors import ModelError
from fusion.model import HEAD_SIZES, FusionConfig
from fusion.quality import expected_calibration_error
from fusion.train import TrainConfig, fit, predict, predict_midi_candidates


def train_ensemble(fusion_config: FusionConfig, data: FusionData, train_idx: np.ndarray, config: TrainConfig,
                   device, progress=None) -> tuple[EnsembleModel, list[dict], list[int], dict | None]:
    """(model, history, best epochs of the inner members, calibration record or None); see the module doc."""
    songs = len(set(data.song_ids[train_idx].tolist()))
    if songs < config.members:
        raise ModelError(f"an ensemble of {config.members} members holds out another part of the training songs "
                         f"for each member, but the training split has {songs} songs; use fewer members")
    inner = song_folds(data.song_ids[train_idx], data.colors[train_idx], config.members, config.seed)
    model = EnsembleModel(fusion_config, config.members).to(device)
    history, best_epochs, held_out = [], [], []
    for m, (fit_rows, held) in enumerate(inner):
        fit_rows, held = train_idx[fit_rows], train_idx[held]
        rows, best = _fit_member(model.members[m], data, fit_rows, held, replace(config, seed=config.seed + m),
                                 progress, {"member": m})
        history += rows
        best_epochs.append(best)
        held_out.append((held, predict(model.members[m], data, held, config.batch_size)[1]))
    if config.refit:
        model = _refit(fusion_config, data, train_idx, config, int(np.median(best_epochs)), device, progress,
                       history)
    calibration = fit_head_temperatures(model, data, held_out) if config.calibrate else None
    return model, history, best_epochs, calibration


def _refit(fusion_config: FusionConfig, data: FusionData, train_idx: np.ndarray, config: TrainConfig, epochs: int,
           device, progress, history: list[dict]) -> EnsembleModel:
    """New members, each trained on every row of `train_idx` for `epochs` epochs (no early stopping)."""
    model = EnsembleModel(fusion_config, config.members).to(device)
    for m, member in enumerate(model.members):
        seed = config.seed + config.members + m  # other initialisations and batch orders than the inner members
        history += _fit_member(member, data, train_idx, None, replace(config, seed=seed, epochs=max(1, epochs)),
                               progress, {"member": m, "refit": True})[0]
    return model


def _fit_member(member, data: FusionData, fit_rows, held, config: TrainConfig, progress, tags: dict):
    """`fit` one member on `fit_rows` (early-stopped on `held`; None: config.epochs epochs); history rows tagged."""
    member.fit_input_statistics(data.values, data.masks, fit_rows)
    torch.manual_seed(config.seed)
    on_epoch = None if progress is None else (lambda row: progress({**row, **tags}))
    rows, best = fit(member, data, fit_rows, held, config, on_epoch)
    return [{**row, **tags} for row in rows], best


def fit_head_temperatures(model: EnsembleModel, data: FusionData, held_out: list) -> dict:
    """Set the model's temperatures from the inner members' logits on the rows each held out; the record of it."""
    rows = np.concatenate([index for index, _ in held_out])
    logits = {head: torch.cat([out[head] for _, out in held_out]) for head in HEAD_SIZES}
    targets = {"color": torch.from_numpy(data.color_targets[rows]),
               **{dim: torch.from_numpy(data.soft_targets[dim][rows]) for dim in DIMENSIONS}}
    temperatures = {head: fit_temperature(logits[head], targets[head]) for head in HEAD_SIZES}
    model.set_temperatures(temperatures)
    return {"temperatures": temperatures, "fitted_on_rows": int(len(rows)),
            "fitted_on": "out-of-fold: each training row predicted by the inner member that held its song out"}


def uncalibrated_metrics(model: EnsembleModel, data: FusionData, val_idx: np.ndarray, batch_size: int) -> dict:
    """Validation colour ECE (full rows, MIDI candidates) and MIDI-candidate colour accuracy with every
    temperature at 1: the before of temperature scaling, beside the calibrated numbers of the metrics."""
    saved = model.temperatures.clone()
    model.temperatures.fill_(1.0)
    try:
        pred, _ = predict(model, data, val_idx, batch_size)
        candidates = predict_midi_candidates(model, data, val_idx, batch_size)
    finally:
        model.temperatures.copy_(saved)
    out = {"color_ece_uncalibrated": expected_calibration_error(pred.probs["color"], pred.targets["color"])}
    if candidates is not None:
        cand = candidates[0]
        out["cand_color_ece_uncalibrated"] = expected_calibration_error(cand.probs["color"], cand.targets["color"])
        out["cand_color_acc_uncalibrated"] = float(np.mean(cand.probs["color"].argmax(1) == cand.targets["color"]))
    return out
