"""Piano-roll augmentation: notes move in pitch and time without wrapping, loudness stays in [0, 1]."""

import numpy as np
import pytest
import torch

from featurestore.errors import ModelError
from fusion.augment import RollAugment, augment_rolls


def roll_with_notes(rows: int = 128, steps: int = 32) -> torch.Tensor:
    roll = torch.zeros(rows, steps)
    roll[60, 4:8] = 0.5  # middle C
    roll[64, 10:12] = 1.0
    roll[127, 0] = 0.25  # the top of the register
    if rows > 128:
        roll[128 + 36, 2] = 1.0  # a kick in the drums block
    return roll


def test_transpose_only_moves_notes_by_one_interval_and_drops_what_leaves_the_register():
    roll = roll_with_notes()
    batch = roll.expand(64, -1, -1).clone()
    out = augment_rolls(batch, RollAugment(transpose=3, shift=0, velocity=0), np.random.default_rng(0))
    seen = set()
    for sample in out:
        lifted = [k for k in range(-3, 4) if torch.equal(sample[max(0, 60 + k)], roll[60])]
        assert len(lifted) == 1
        k = lifted[0]
        seen.add(k)
        assert torch.equal(sample[64 + k], roll[64])
        assert sample[127, 0] == (0.25 if k == 0 else 0.0) or k < 0  # up: pushed off, never wrapped to the bottom
        assert sample[:3].sum() == 0  # nothing wrapped round
    assert seen == set(range(-3, 4))


def shifted(roll: torch.Tensor, by: int) -> torch.Tensor:
    """By hand: `roll` moved `by` steps later (earlier if negative), silence where nothing was."""
    out = torch.zeros_like(roll)
    for t in range(roll.shape[1]):
        if 0 <= t - by < roll.shape[1]:
            out[:, t] = roll[:, t - by]
    return out


def test_time_shift_crops_and_pads_with_silence_and_drums_keep_their_rows():
    roll = roll_with_notes(rows=256)
    out = augment_rolls(roll.expand(32, -1, -1).clone(), RollAugment(transpose=0, shift=0.25, velocity=0),
                        np.random.default_rng(1))
    seen = set()
    for sample in out:
        matches = [by for by in range(-8, 9) if torch.equal(sample, shifted(roll, by))]
        assert matches  # one time shift of the whole roll, drums included, within 0.25 * 32 steps
        seen.add(matches[0])
    assert len(seen) > 5


def test_velocity_jitter_scales_each_roll_once_and_stays_in_range():
    roll = roll_with_notes()
    out = augment_rolls(roll.expand(16, -1, -1).clone(), RollAugment(transpose=0, shift=0, velocity=0.5),
                        np.random.default_rng(2))
    for sample in out:
        gain = float(sample[60, 4] / 0.5)
        assert 0.5 <= gain <= 1.5 and float(sample.max()) <= 1.0
        assert float(sample[127, 0]) == pytest.approx(min(0.25 * gain, 1.0), rel=1e-5)
    with pytest.raises(ModelError):
        RollAugment(shift=1.5)
