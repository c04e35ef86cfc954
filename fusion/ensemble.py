"""A deep ensemble of fusion models with per-head temperatures: one module, one model.pt, one model.onnx.

`EnsembleModel` holds M independently initialised `FusionModel` members, each
trained on another part of the training songs (fusion/train.py). Its output is
the mean of the members' probabilities; before the mean, each member's logits
are divided by the head's temperature (1 until `fit_temperatures` sets it on
rows the members did not train on). The temperatures are buffers, so torch,
model.onnx and therefore `ChromaticScorer` all apply them, unchanged.

It exposes FusionModel's interface (`config`, `input_names`, `forward`,
`forward_logits`): training, prediction, export and parity checks treat it as
any other model. Its `forward_logits` returns log mean probabilities, so a
softmax of them is the ensemble's probabilities.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fusion.errors import ModelError
from fusion.model import HEAD_SIZES, FusionConfig, FusionModel

# Temperatures searched by fit_temperatures: log-spaced, 0.2 to 5 (below 1 sharpens, above softens).
TEMPERATURE_GRID = np.exp(np.linspace(math.log(0.2), math.log(5.0), 161))


class EnsembleModel(nn.Module):
    def __init__(self, config: FusionConfig, members: int):
        super().__init__()
        if members < 1:
            raise ModelError(f"an ensemble needs at least one member, got {members}")
        self.members = nn.ModuleList(FusionModel(config) for _ in range(members))
        self.register_buffer("temperatures", torch.ones(len(HEAD_SIZES)))

    @property
    def config(self) -> FusionConfig:
        return self.members[0].config

    @property
    def input_names(self) -> list[str]:
        return self.members[0].input_names

    forward = FusionModel.forward  # softmax of forward_logits, the same outputs as a single model

    def forward_logits(self, *tensors: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """({head: log of the members' mean tempered probabilities}, the first member's fused embedding).

        The members' embedding spaces are not aligned, so a mean of them would mean nothing; the
        first member's stands for the ensemble (the explorer's fused space).
        """
        outputs = [member.forward_logits(*tensors) for member in self.members]
        logits = {}
        for k, head in enumerate(HEAD_SIZES):
            log_probs = torch.stack([F.log_softmax(out[head] / self.temperatures[k], dim=-1) for out, _ in outputs])
            logits[head] = torch.logsumexp(log_probs, dim=0) - math.log(len(outputs))
        return logits, outputs[0][1]

    def temperature_dict(self) -> dict[str, float]:
        return {head: float(t) for head, t in zip(HEAD_SIZES, self.temperatures.tolist())}

    def set_temperatures(self, temperatures: dict[str, float]) -> None:
        self.temperatures.copy_(torch.tensor([float(temperatures.get(h, 1.0)) for h in HEAD_SIZES]))


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The temperature of TEMPERATURE_GRID with the least mean cross-entropy of softmax(logits / T) to
    `targets` (class indices [N], or probability rows [N, C] for soft targets). 1.0 without rows."""
    if len(logits) == 0:
        return 1.0
    soft = targets if targets.dim() == 2 else F.one_hot(targets, logits.shape[-1]).to(logits.dtype)
    losses = [float(-(soft * F.log_softmax(logits / t, dim=-1)).sum(-1).mean()) for t in TEMPERATURE_GRID]
    return float(TEMPERATURE_GRID[int(np.argmin(losses))])


def model_checkpoint(model: nn.Module) -> dict:
    """What model.pt holds: the member config, the weights, and the member count of an ensemble."""
    out = {"fusion_config": model.config.to_dict(), "state_dict": model.state_dict()}
    if isinstance(model, EnsembleModel):
        out["members"] = len(model.members)
    return out


def model_from_checkpoint(checkpoint: dict) -> nn.Module:
    """The model of a `model_checkpoint` (single models of earlier runs have no "members")."""
    config = FusionConfig.from_dict(checkpoint["fusion_config"])
    members = checkpoint.get("members")
    model = FusionModel(config) if members is None else EnsembleModel(config, int(members))
    model.load_state_dict(checkpoint["state_dict"])
    return model


def describe(model: nn.Module) -> dict | None:
    """The manifest's record of an ensemble (None for a single model)."""
    if not isinstance(model, EnsembleModel):
        return None
    return {"members": len(model.members), "temperatures": model.temperature_dict()}
