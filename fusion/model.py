"""The fusion model: per-input encoders, learned null embeddings, fusion trunk, four heads.

Designed for ONNX export: `forward(values_0, mask_0, values_1, mask_1, ...)`
takes plain tensors in the manifest's input order and returns probabilities
(softmax inside) plus the fused embedding. Every op works per sample (LayerNorm,
never BatchNorm), so a sample's output never depends on the rest of its batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fusion.errors import ModelError
from fusion.layout import HEAD_LABELS
from fusion.roll_encoders import TemporalRollEncoder

FUSIONS = ("concat", "gated")
# How a tensor input (a piano roll) is encoded: cnn2d (TensorEncoder, below) or the
# temporal encoders of fusion/roll_encoders.py.
TENSOR_ENCODERS = ("cnn2d", "conv1d", "chroma")
KINDS = ("vector", "tensor")
HEAD_SIZES: dict[str, int] = {head: len(labels) for head, labels in HEAD_LABELS.items()}


@dataclass(frozen=True)
class InputSpec:
    name: str
    kind: str  # vector | tensor
    shape: tuple[int, ...]


@dataclass(frozen=True)
class FusionConfig:
    inputs: tuple[InputSpec, ...]
    embed_dim: int = 256
    hidden_dims: tuple[int, ...] = (512, 256)  # the last one is the fused embedding's size
    fusion: str = "concat"
    dropout: float = 0.3
    modality_dropout: float = 0.15
    # Probability that a training sample keeps only ONE of its present inputs.
    # Scoring feeds MIDI alone (plus a concept); in the data that pattern is rare,
    # so without this the model never learns to read MIDI on its own.
    solo_dropout: float = 0.0
    cnn_channels: tuple[int, ...] = (8, 16, 32)
    # Max-pool tensor inputs over their last (time) axis first: a 256-step roll at
    # 100 ms becomes 128 steps at 200 ms. Which notes sound survives a max, and the
    # CNN costs half as much.
    cnn_time_pool: int = 2
    tensor_encoder: str = "cnn2d"
    gate_hidden: int = 64

    def __post_init__(self):
        if not self.inputs:
            raise ModelError("a fusion model needs at least one input")
        if self.fusion not in FUSIONS:
            raise ModelError(f"unknown fusion {self.fusion!r}; expected one of {', '.join(FUSIONS)}")
        check_tensor_encoder(self.tensor_encoder)
        for spec in self.inputs:
            if spec.kind not in KINDS or (spec.kind == "tensor" and len(spec.shape) != 2):
                raise ModelError(
                    f"input {spec.name!r}: kind {spec.kind!r} with shape {spec.shape} is not supported; "
                    "expected a vector, or a 2-D tensor such as a [128 x T] piano roll"
                )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FusionConfig":
        data = dict(data)
        data["inputs"] = tuple(InputSpec(i["name"], i["kind"], tuple(i["shape"])) for i in data["inputs"])
        for key in ("hidden_dims", "cnn_channels"):
            data[key] = tuple(data[key])
        return cls(**data)


def check_tensor_encoder(name: str) -> None:
    if name not in TENSOR_ENCODERS:
        raise ModelError(f"unknown tensor encoder {name!r}; expected one of {', '.join(TENSOR_ENCODERS)}")


class Standardize(nn.Module):
    """(x - mean) / std with the training set's statistics, kept as buffers.

    Weight-free features mix scales (a tempo near 100 beside fractions near 0.1);
    without this the largest-scale features dominate the first layer. Buffers
    travel with the weights into model.pt and model.onnx.
    """

    def __init__(self, size: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("std", torch.ones(size))

    def set_statistics(self, values: torch.Tensor) -> None:
        if len(values) == 0:
            return
        self.mean.copy_(values.mean(dim=0))
        std = values.std(dim=0, unbiased=False)
        # A feature constant over the training rows (no drums in the corpus, an instrument family nobody
        # plays) taught the model nothing; a candidate where it varies must not be read as millions of
        # standard deviations off. An infinite std maps it to 0, as on every training row.
        self.std.copy_(torch.where(std > 1e-6, std, torch.full_like(std, float("inf"))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def vector_encoder(size: int, embed_dim: int) -> nn.Module:
    return nn.Sequential(Standardize(size), nn.Linear(size, embed_dim), nn.LayerNorm(embed_dim), nn.ReLU())


class TensorEncoder(nn.Module):
    """A small CNN over a [H x W] tensor (piano roll: pitch x time), like the seed's PianoRollEncoder.

    The time max-pool and a stride-2 first conv bring a 128 x 256 roll down to
    ~2.7 M multiply-adds per sample (the seed's design: ~80 M), which is what
    makes CPU training practical.
    """

    def __init__(self, channels: tuple[int, ...], embed_dim: int, time_pool: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.MaxPool2d((1, time_pool))] if time_pool > 1 else []
        previous = 1
        for i, width in enumerate(channels):
            layers += [nn.Conv2d(previous, width, 3, stride=2 if i == 0 else 1, padding=1), nn.ReLU()]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            previous = width
        self.conv = nn.Sequential(*layers, nn.AdaptiveAvgPool2d((4, 4)))
        self.project = nn.Sequential(nn.Linear(previous * 16, embed_dim), nn.LayerNorm(embed_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.conv(x.unsqueeze(1)).flatten(1))


def tensor_encoder(config: FusionConfig, shape: tuple[int, ...]) -> nn.Module:
    if config.tensor_encoder == "cnn2d":
        return TensorEncoder(config.cnn_channels, config.embed_dim, config.cnn_time_pool)
    # cnn_time_pool too: at the stored 100 ms these read no better (BENCHMARKS.md, MIDI representations).
    return TemporalRollEncoder(shape[0], config.embed_dim, config.tensor_encoder == "chroma", config.cnn_time_pool)


class FusionModel(nn.Module):
    def __init__(self, config: FusionConfig):
        super().__init__()
        self.config = config
        embed = config.embed_dim
        self.encoders = nn.ModuleList(
            tensor_encoder(config, s.shape) if s.kind == "tensor" else vector_encoder(math.prod(s.shape), embed)
            for s in config.inputs
        )
        # One learned "absent" embedding per input: absence is not the same as a silent/empty input.
        self.null_embeddings = nn.Parameter(0.02 * torch.randn(len(config.inputs), embed))
        n = len(config.inputs)
        if config.fusion == "gated":
            hidden = config.gate_hidden
            self.gate = nn.Sequential(nn.Linear(n * embed, hidden), nn.ReLU(), nn.Linear(hidden, n))
        trunk, previous = [], embed if config.fusion == "gated" else n * embed
        for width in config.hidden_dims:
            trunk += [nn.Linear(previous, width), nn.ReLU(), nn.Dropout(config.dropout)]
            previous = width
        self.trunk = nn.Sequential(*trunk)
        self.heads = nn.ModuleDict({name: nn.Linear(previous, size) for name, size in HEAD_SIZES.items()})
        self.encode_all_rows = False  # True forces the export path (torch.where) in eager mode too

    def fit_input_statistics(self, values: dict, masks: dict, rows: np.ndarray) -> None:
        """Set each vector input's standardisation from its present rows among `rows` (training)."""
        for spec, encoder in zip(self.config.inputs, self.encoders):
            if spec.kind != "tensor":  # tensors (piano rolls, 0..1) need none; don't copy them
                present = rows[masks[spec.name][rows]]
                vectors = values[spec.name][present].reshape(-1, math.prod(spec.shape))
                encoder[0].set_statistics(torch.as_tensor(vectors, dtype=torch.float32))

    @property
    def input_names(self) -> list[str]:
        """Flat ONNX input names in forward order: values then mask per input."""
        return [n for s in self.config.inputs for n in (f"{s.name}_values", f"{s.name}_mask")]

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(temporal, spatial, ontological, colour probabilities, fused embedding)."""
        logits, fused = self.forward_logits(*tensors)
        return (*(F.softmax(logits[h], dim=-1) for h in HEAD_SIZES), fused)

    def forward_logits(self, *tensors: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """({head: logits}, fused embedding) for `forward`'s arguments; the training loss uses this."""
        if len(tensors) != 2 * len(self.config.inputs):
            raise ModelError(f"expected {2 * len(self.config.inputs)} tensors: {', '.join(self.input_names)}")
        values, masks = list(tensors[0::2]), [m.to(torch.bool) for m in tensors[1::2]]
        if self.training and (self.config.modality_dropout > 0 or self.config.solo_dropout > 0):
            masks = modality_dropout(masks, self.config.modality_dropout, self.config.solo_dropout)
        embeddings = [self._embed(i, v, m) for i, (v, m) in enumerate(zip(values, masks))]
        fused = self.trunk(self._fuse(embeddings))
        return {name: head(fused) for name, head in self.heads.items()}, fused

    def _embed(self, i: int, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        null = self.null_embeddings[i].expand(values.shape[0], -1)
        if self.encode_all_rows or _tracing():
            # Exported graphs need data-independent shapes: encode every row, then select.
            return torch.where(mask.unsqueeze(-1), self.encoders[i](values), null)
        # Eager: only present rows go through the encoder (most piano rolls are
        # absent and the CNN is the costly part); per row, the same result.
        out = null.clone()
        if mask.any():
            out[mask] = self.encoders[i](values[mask])
        return out

    def _fuse(self, embeddings: list[torch.Tensor]) -> torch.Tensor:
        if self.config.fusion == "concat":
            return torch.cat(embeddings, dim=-1)
        # Gated: per-sample softmax weights over inputs (computed from all embeddings,
        # null ones included, so the gate can learn to lean away from absent inputs),
        # then a weighted sum in the shared embedding space.
        stacked = torch.stack(embeddings, dim=1)  # [B, n, E]
        weights = F.softmax(self.gate(stacked.flatten(1)), dim=-1)  # [B, n]
        return (weights.unsqueeze(-1) * stacked).sum(dim=1)


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting()


def modality_dropout(masks: list[torch.Tensor], p: float, solo: float = 0.0) -> list[torch.Tensor]:
    """Drop each present input with probability p, per sample; with probability `solo`
    a sample keeps just one of its present inputs (chosen uniformly). A sample never
    loses all its inputs."""
    present = torch.stack(masks, dim=1)  # [B, n]
    kept = present & (torch.rand(present.shape, device=present.device) >= p)
    if solo > 0:
        choice = torch.multinomial(present.float() + 1e-6, 1).squeeze(1)  # a random present input
        only = F.one_hot(choice, present.shape[1]).bool() & present
        rows = torch.rand(present.shape[0], device=present.device) < solo
        kept = torch.where(rows.unsqueeze(1), only, kept)
    lost_all = present.any(dim=1) & ~kept.any(dim=1)
    kept = torch.where(lost_all.unsqueeze(1), present, kept)
    return list(kept.unbind(dim=1))


def example_inputs(config: FusionConfig, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Example `forward` arguments (all inputs present), e.g. for ONNX export."""
    out: list[torch.Tensor] = []
    for spec in config.inputs:
        out += [torch.zeros(batch, *spec.shape), torch.ones(batch, dtype=torch.bool)]
    return tuple(out)
