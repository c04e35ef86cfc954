"""Key- and tempo-invariant statistics of a MIDI's notes: `midistats` with features="invariant".

The same music transposed or played faster gives the same numbers here, so a
model cannot learn a colour from one song's key or tempo and has to read how
the music is built:

- pitch classes relative to the estimated tonic (Krumhansl-Kessler: the best
  correlating major or minor key's tonic is index 0), 12 values;
- interval-class content of what sounds together: at each onset, the interval
  classes (1..6 semitones, mod 12) between the distinct pitch classes sounding,
  normalised, 6 values;
- chord qualities of onsets with three or more pitch classes: the share that
  contains a major, minor, diminished, augmented or suspended triad on some
  root, or none of these, 6 values; plus the share of onsets that are chords;
- voices: log1p of the mean number of distinct pitch classes sounding at an onset;
- onset patterns measured in beats (ticks), not seconds: where onsets fall
  within the beat (12 bins: straight and triplet positions) and within a 4-beat
  bar (16 sixteenths); log1p of the mean and std of inter-onset gaps in beats;
- skyline melody direction: shares of steps up, down and repeated.

Instrument families are not here: the note table carries no program numbers.
"""

from __future__ import annotations

import numpy as np

from encoders.media import NoteTable

BEAT_BINS = 12
BAR_BINS = 16
BAR_BEATS = 4
# Triads as pitch-class sets above a root.
TRIADS = {"major": (0, 4, 7), "minor": (0, 3, 7), "diminished": (0, 3, 6), "augmented": (0, 4, 8),
          "suspended": (0, 5, 7)}
# Krumhansl-Kessler key profiles (C major / C minor): correlating a pitch-class histogram
# with their 12 rotations estimates the key.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

INVARIANT_NAMES: tuple[str, ...] = (
    *(f"tonic_relative_pc_{k}" for k in range(12)),
    *(f"harmonic_interval_class_{k}" for k in range(1, 7)),
    *(f"chord_{name}" for name in TRIADS), "chord_other", "chord_share",
    "voices_mean_log",
    *(f"beat_position_{k}" for k in range(BEAT_BINS)),
    *(f"bar_position_{k}" for k in range(BAR_BINS)),
    "ioi_beats_mean_log", "ioi_beats_std_log",
    "melody_up", "melody_down", "melody_repeat",
)


def invariant_statistics(notes: NoteTable, pitched: NoteTable, pitch_classes: np.ndarray) -> np.ndarray:
    """The INVARIANT_NAMES vector; `pitched` is `notes` without drums, `pitch_classes` its 12-bin histogram."""
    groups = _onset_pitch_classes(pitched)
    parts = [
        _tonic_relative(pitch_classes),
        _harmonic_interval_classes(groups),
        _chord_qualities(groups),
        [np.log1p(np.mean([len(g) for g in groups])) if groups else 0.0],
        _onset_positions(notes),
        _beat_gaps(notes),
        _melody_direction(pitched),
    ]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])


def normalised(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts, dtype=np.float64)


def estimated_tonic(pitch_classes: np.ndarray) -> int:
    """The tonic of the best-correlating major or minor key (0 when the histogram is flat)."""
    if pitch_classes.std() == 0:
        return 0
    scores = [np.corrcoef(pitch_classes, np.roll(profile, tonic))[0, 1]
              for profile in (MAJOR_PROFILE, MINOR_PROFILE) for tonic in range(12)]
    return int(np.argmax(scores)) % 12


def _tonic_relative(pitch_classes: np.ndarray) -> np.ndarray:
    return np.roll(pitch_classes, -estimated_tonic(pitch_classes))


def _onset_pitch_classes(pitched: NoteTable) -> list[frozenset[int]]:
    """The distinct pitch classes sounding at each distinct onset tick (started there or still held)."""
    if pitched.size == 0:
        return []
    groups = []
    for tick in np.unique(pitched.start_tick):
        sounding = (pitched.start_tick <= tick) & ((pitched.end_tick > tick) | (pitched.start_tick == tick))
        groups.append(frozenset((pitched.pitch[sounding] % 12).tolist()))
    return groups


def _harmonic_interval_classes(groups: list[frozenset[int]]) -> np.ndarray:
    counts = np.zeros(6)
    for group in groups:
        pcs = sorted(group)
        for i, a in enumerate(pcs):
            for b in pcs[i + 1:]:
                step = (b - a) % 12
                counts[min(step, 12 - step) - 1] += 1
    return normalised(counts)


def _chord_qualities(groups: list[frozenset[int]]) -> list[float]:
    chords = [g for g in groups if len(g) >= 3]
    counts = np.zeros(len(TRIADS) + 1)
    for chord in chords:
        found = [k for k, shape in enumerate(TRIADS.values())
                 if any({(root + s) % 12 for s in shape} <= chord for root in chord)]
        counts[found[0] if found else len(TRIADS)] += 1
    share = len(chords) / len(groups) if groups else 0.0
    return [*normalised(counts), share]


def _onset_positions(notes: NoteTable) -> np.ndarray:
    beats = np.unique(notes.start_tick) / notes.ticks_per_beat
    in_beat = np.floor((beats % 1.0) * BEAT_BINS + 1e-6).astype(np.int64) % BEAT_BINS
    in_bar = np.floor((beats % BAR_BEATS) * (BAR_BINS / BAR_BEATS) + 1e-6).astype(np.int64) % BAR_BINS
    return np.r_[normalised(np.bincount(in_beat, minlength=BEAT_BINS).astype(np.float64)),
                 normalised(np.bincount(in_bar, minlength=BAR_BINS).astype(np.float64))]


def _beat_gaps(notes: NoteTable) -> list[float]:
    onsets = np.unique(notes.start_tick) / notes.ticks_per_beat
    if onsets.size < 2:
        return [0.0, 0.0]
    gaps = np.diff(onsets)
    return [float(np.log1p(gaps.mean())), float(np.log1p(gaps.std()))]


def _melody_direction(pitched: NoteTable) -> list[float]:
    if pitched.size < 2:
        return [0.0, 0.0, 0.0]
    last_of_group = np.r_[np.diff(pitched.start_tick) != 0, True]
    steps = np.diff(pitched.pitch[last_of_group].astype(np.int64))
    if steps.size == 0:
        return [0.0, 0.0, 0.0]
    return [float(np.mean(steps > 0)), float(np.mean(steps < 0)), float(np.mean(steps == 0))]
