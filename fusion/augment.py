"""Piano-roll augmentation while training, applied to the stored tensors of a batch.

A colour should not hang on one song's key, its first bar's timing or how hard
it was played, so each training roll is, independently and per sample:

- transposed by up to `transpose` semitones either way (rows move, notes pushed
  off the register are dropped, never wrapped round);
- shifted in time by up to `shift` of its steps either way (content leaving the
  window is cropped, the gap is silence);
- velocity-jittered: every sounding cell scaled by one factor in 1 ± `velocity`,
  capped at 1 (binary rolls stay binary: their cells are capped back to 1).

Only tensor inputs of [128 or 256 x T] are touched (a drums block below row 128
is shifted in time but never transposed). Validation and scoring never augment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from featurestore.errors import ModelError

PITCH_ROWS = 128


@dataclass(frozen=True)
class RollAugment:
    transpose: int = 6
    shift: float = 0.125
    velocity: float = 0.2

    def __post_init__(self):
        if self.transpose < 0 or not 0 <= self.shift < 1 or not 0 <= self.velocity < 1:
            raise ModelError(f"bad piano-roll augmentation {self}: transpose >= 0, shift and velocity in [0, 1)")


def augment_rolls(rolls: torch.Tensor, config: RollAugment, rng: np.random.Generator) -> torch.Tensor:
    """A new [B, H, T] batch: each roll transposed, time-shifted and velocity-scaled at random."""
    batch, _, steps = rolls.shape
    out = torch.zeros_like(rolls)
    semitones = rng.integers(-config.transpose, config.transpose + 1, size=batch)
    max_shift = int(config.shift * steps)
    shifts = rng.integers(-max_shift, max_shift + 1, size=batch)
    gains = rng.uniform(1 - config.velocity, 1 + config.velocity, size=batch)
    for i in range(batch):
        moved = _shift(rolls[i], int(semitones[i]), 0, PITCH_ROWS)
        if rolls.shape[1] > PITCH_ROWS:  # the drums block keeps its rows
            moved[PITCH_ROWS:] = rolls[i, PITCH_ROWS:]
        out[i] = _shift(moved, int(shifts[i]), 1, steps)
    return (out * torch.as_tensor(gains, dtype=out.dtype).view(-1, 1, 1)).clamp_(max=1.0)


def _shift(roll: torch.Tensor, by: int, axis: int, length: int) -> torch.Tensor:
    """`roll` moved `by` places along `axis` (within its first `length`), zero-filled, nothing wrapped."""
    out = torch.zeros_like(roll)
    if abs(by) >= length:
        return out
    src = slice(max(0, -by), length - max(0, by))
    dst = slice(max(0, by), length - max(0, -by))
    if axis == 0:
        out[dst] = roll[src]
    else:
        out[:, dst] = roll[:, src]
    return out
