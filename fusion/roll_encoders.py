"""Temporal encoders of a [pitch x time] piano roll (FusionConfig.tensor_encoder).

The default `cnn2d` (fusion/model.py TensorEncoder) treats the roll as an image:
a 3x3 filter sees three neighbouring semitones, and 4x4 average pooling keeps
only a coarse register x time layout, so which pitches sound together (chords,
voicings) and the key are mostly lost. These encoders read the roll as music:

* `conv1d`: the 128 pitches are the channels of a 1-D convolution over time,
  so every filter sees the whole chord at each step.
* `chroma`: the roll is folded into pitch class (12, max over octaves) and
  register (11 octaves, max over pitch classes) before the same 1-D body: a far
  smaller input that keeps harmony and register and drops octave-exact voicing.

Both add note onsets (where a pitch's level rises from one step to the next:
the stored roll merges back-to-back notes, so onsets carry the rhythm) as a
second block of channels, max-pool time by `cnn_time_pool` (2: 200 ms steps), map
each step's chord to a vector (a pointwise conv), run dilated 1-D convolutions
(receptive field ~6 s), then pool over time with mean and max. Everything after
the last sounding step is zeroed after every layer and left out of the pooling:
a roll is padded with silence past its segment's end, and a summary over that
padding would depend on the segment's length. Every op is per sample (no
BatchNorm) and exports to ONNX. Measured against `cnn2d` and `midistats` in
BENCHMARKS.md ("Model quality", "MIDI representations").
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

PITCH_CLASSES = 12
PITCHES = 128  # MIDI note numbers; a taller roll holds drum and instrument-family rows after them


def onsets(roll: torch.Tensor) -> torch.Tensor:
    """Where each row's level rises from the previous step ([B, P, T] -> [B, P, T]); step 0 rises from silence."""
    previous = F.pad(roll, (1, 0))[..., :-1]
    return F.relu(roll - previous)


def octaves(pitches: int) -> int:
    """Register bands of a roll with `pitches` pitched rows: 11 for MIDI's 128 (octaves -1..9)."""
    return -(-pitches // PITCH_CLASSES)


def fold_chroma(roll: torch.Tensor) -> torch.Tensor:
    """[B, P, T] -> [B, 12 + octaves + drum rows, T]: pitch-class and register profiles per step (max-folded).

    Only rows 0..127 are pitches. Rows after them pass through unfolded: a drum block
    (`pianoroll drums=separate`; drum note numbers name instruments such as kick and snare, not
    pitches) and instrument-family rows (`pianoroll families=true`).
    """
    batch, rows, steps = roll.shape
    pitches = min(rows, PITCHES)
    padded = F.pad(roll[:, :pitches], (0, 0, 0, octaves(pitches) * PITCH_CLASSES - pitches))
    grid = padded.reshape(batch, octaves(pitches), PITCH_CLASSES, steps)
    drums = [roll[:, PITCHES:]] if rows > PITCHES else []  # shapes are static: no empty tensor in the export
    return torch.cat([grid.amax(dim=1), grid.amax(dim=2), *drums], dim=1)


def folded_rows(rows: int) -> int:
    """Channels of `fold_chroma` for a roll of `rows` rows."""
    pitches = min(rows, PITCHES)
    return PITCH_CLASSES + octaves(pitches) + rows - pitches


def sounding_steps(roll: torch.Tensor) -> torch.Tensor:
    """[B, P, T] -> [B, 1, T] float mask: 1 up to and including the last step where anything sounds.

    An all-silent roll keeps step 0, so the pooled mean is defined (a resting track
    is a valid input: its embedding is that of silence).
    """
    steps = torch.arange(roll.shape[-1], device=roll.device, dtype=roll.dtype)
    active = (roll.amax(dim=1) > 0).to(roll.dtype)  # [B, T]
    last = (active * steps).amax(dim=1, keepdim=True)  # [B, 1]
    return (steps <= last).to(roll.dtype).unsqueeze(1)


class TemporalRollEncoder(nn.Module):
    """Roll [B, P, T] -> embedding [B, E]: a front-end (`conv1d`: identity, `chroma`: fold), onsets,
    dilated 1-D convolutions over time, masked mean + max pooling, projection."""

    def __init__(self, pitches: int, embed_dim: int, fold: bool, time_pool: int = 1, width: int = 64,
                 kernel: int = 5, dilations: tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        self.fold = fold
        self.pool = nn.MaxPool1d(time_pool) if time_pool > 1 else nn.Identity()
        per_block = folded_rows(pitches) if fold else pitches
        # A pointwise layer first: each step's chord (levels and onsets) becomes a `width` vector,
        # so the temporal filters after it cost the same whatever the roll's height.
        self.convs = nn.ModuleList([nn.Conv1d(2 * per_block, width, 1)] + [
            nn.Conv1d(width, width, kernel, dilation=dilation, padding=dilation * (kernel // 2))
            for dilation in dilations])
        self.project = nn.Sequential(nn.Linear(2 * width, embed_dim), nn.LayerNorm(embed_dim), nn.ReLU())

    def forward(self, roll: torch.Tensor) -> torch.Tensor:
        front = fold_chroma if self.fold else (lambda x: x)
        # Onsets at the stored resolution, then both blocks max-pooled over time (a rise survives a max).
        steps = self.pool(torch.cat([front(roll), front(onsets(roll))], dim=1))
        mask = sounding_steps(steps)
        hidden = steps
        for conv in self.convs:
            # Zeroed past the last sound after every layer, so the silence a roll is padded with
            # looks to the next layer exactly like its zero padding: no trace of the segment's length.
            hidden = F.relu(conv(hidden)) * mask
        mean = hidden.sum(dim=-1) / mask.sum(dim=-1)
        peak = hidden.amax(dim=-1)  # masked steps are 0, never above a ReLU output
        return self.project(torch.cat([mean, peak], dim=-1))
