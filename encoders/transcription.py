"""How well a transcribed roll matches the true one: note-onset and frame-level F-measures.

Used where the truth is known (audio rendered from its own MIDI: the synthetic
corpus, tests). Counts, not ratios, are returned so segments add up (micro
averages over a corpus); `f_measure` turns them into precision/recall/F.

* Frame level: cells of two rolls on the same grid, a cell "on" at >= threshold.
* Note onsets: notes are read off a roll as runs of "on" cells per pitch (runs
  shorter than `min_steps` are dropped as flicker) and matched to the true notes
  with mir_eval's standard rule (same pitch within half a semitone, onsets
  within `onset_tolerance` seconds, offsets ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ON = 0.5  # a posterior (or a velocity/127) at or above this counts as a sounding note
ONSET_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class Counts:
    """True positives, false positives, false negatives."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def plus(self, other: "Counts") -> "Counts":
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def f_measure(self) -> dict[str, float]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f": f}


def frame_counts(reference: np.ndarray, estimate: np.ndarray, threshold: float = ON) -> Counts:
    """Cell-level agreement of two [pitch, steps] rolls on one grid (a true roll is on where > 0)."""
    if reference.shape != estimate.shape:
        raise ValueError(f"rolls differ in shape: reference {reference.shape}, estimate {estimate.shape}")
    ref = np.asarray(reference, dtype=np.float32) > 0
    est = np.asarray(estimate, dtype=np.float32) >= threshold
    return Counts(int((ref & est).sum()), int((~ref & est).sum()), int((ref & ~est).sum()))


def roll_notes(roll: np.ndarray, resolution_ms: float, threshold: float = ON, min_steps: int = 1):
    """Notes of a roll as (intervals [n, 2] seconds, MIDI pitches [n]): runs of on-cells per row."""
    on = np.asarray(roll, dtype=np.float32) >= threshold
    edges = np.diff(np.pad(on.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    starts_r, starts_c = np.nonzero(edges == 1)
    ends_r, ends_c = np.nonzero(edges == -1)  # row-major order pairs each start with its end
    keep = (ends_c - starts_c) >= min_steps
    res_s = resolution_ms / 1000.0
    intervals = np.stack([starts_c[keep] * res_s, ends_c[keep] * res_s], axis=1).astype(np.float64)
    return intervals.reshape(-1, 2), starts_r[keep].astype(np.int64)


def onset_counts(ref_intervals, ref_pitches, est_intervals, est_pitches, tolerance: float = ONSET_TOLERANCE_S) -> Counts:
    """Notes matched by onset and pitch (mir_eval.transcription.match_notes, offsets ignored)."""
    import mir_eval

    ref_intervals, est_intervals = np.asarray(ref_intervals).reshape(-1, 2), np.asarray(est_intervals).reshape(-1, 2)
    if not len(ref_intervals) or not len(est_intervals):
        return Counts(0, len(est_intervals), len(ref_intervals))
    matched = mir_eval.transcription.match_notes(
        ref_intervals, _hz(ref_pitches), est_intervals, _hz(est_pitches), onset_tolerance=tolerance, offset_ratio=None
    )
    return Counts(len(matched), len(est_intervals) - len(matched), len(ref_intervals) - len(matched))


def _hz(pitches) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitches, dtype=np.float64) - 69.0) / 12.0)
