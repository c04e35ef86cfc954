"""Composing a song's notes from its parameters: harmony, pad, bass and a lead line.

Everything is vectorised numpy over the whole song; times are in seconds at
one constant tempo, so a segment is just a time window over these notes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth.styles import CHORD_KINDS, SongParams

PARTS: tuple[str, ...] = ("lead", "pad", "bass")
LEAD, PAD, BASS = range(3)
BEATS_PER_BAR = 4

MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
# Scale degrees (0 = tonic) of four-bar progressions.
MAJOR_PROGRESSIONS = ((0, 4, 5, 3), (0, 3, 4, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 0, 4), (1, 4, 0, 0))
MINOR_PROGRESSIONS = ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4))
# Chord tones as scale-degree offsets from the root, per CHORD_KINDS entry.
CHORD_DEGREES = {"triad": (0, 2, 4), "seventh": (0, 2, 4, 6), "sus": (0, 3, 4), "add9": (0, 2, 4, 8)}

# (onset beat, length in beats) within a bar, by rhythm and by busyness.
PAD_PATTERNS = {
    "straight": (((0, 4),), ((0, 2), (2, 2)), ((0, 0.8), (1, 0.8), (2, 0.8), (3, 0.8))),
    "swing": (((0, 4),), ((0, 1.6), (1.67, 2.2)), ((0, 0.6), (0.67, 0.3), (2, 0.6), (2.67, 1.2))),
    "syncopated": (((0, 1.4), (1.5, 2.4)), ((0, 0.7), (1.5, 1.0), (3.5, 0.5)), ((0, 0.4), (0.75, 0.6), (1.5, 0.9), (3, 0.4), (3.5, 0.4))),
}
# (onset beat, length, scale-degree offset from the chord root).
BASS_PATTERNS = {
    "straight": (((0, 1.8, 0), (2, 1.8, 0)), ((0, 0.9, 0), (1, 0.9, 0), (2, 0.9, 4), (3, 0.9, 0))),
    "swing": (((0, 1.9, 0), (2, 1.9, 4)), ((0, 0.9, 0), (1, 0.9, 2), (2, 0.9, 4), (3, 0.6, 5), (3.67, 0.3, 4))),
    "syncopated": (((0, 1.3, 0), (2.5, 1.4, 4)), ((0, 1.3, 0), (1.5, 0.8, 0), (2.5, 0.5, 4), (3, 0.9, 0))),
}
# Lead onset grid within a beat (positions, relative weights): swing uses a
# triplet grid, syncopation favours the off-beats.
LEAD_GRIDS = {
    "straight": ((0.0, 0.25, 0.5, 0.75), (1.0, 0.12, 0.6, 0.12)),
    "swing": ((0.0, 1 / 3, 2 / 3), (1.0, 0.08, 0.75)),
    "syncopated": ((0.0, 0.25, 0.5, 0.75), (0.45, 0.5, 0.55, 0.8)),
}
LEAD_REST_PROB = 0.2  # chance that a two-bar phrase has no lead line


@dataclass(frozen=True)
class Notes:
    """Parallel arrays of notes; times in seconds."""

    pitch: np.ndarray
    start: np.ndarray
    end: np.ndarray
    velocity: np.ndarray
    part: np.ndarray

    def __len__(self) -> int:
        return int(self.pitch.size)

    def window(self, start: float, end: float) -> "Notes":
        """Notes sounding in [start, end), clipped to it and shifted to begin at 0."""
        keep = (self.start < end) & (self.end > start)
        return Notes(
            pitch=self.pitch[keep],
            start=np.maximum(self.start[keep], start) - start,
            end=np.minimum(self.end[keep], end) - start,
            velocity=self.velocity[keep],
            part=self.part[keep],
        )

    def around(self, start: float, end: float, tail: float) -> "Notes":
        """Notes audible in [start, end) (a release `tail` after each end), unclipped,
        shifted so `start` is 0: a renderer keeps their true phase and envelope."""
        keep = (self.start < end) & (self.end + tail > start)
        return Notes(
            pitch=self.pitch[keep],
            start=self.start[keep] - start,
            end=self.end[keep] - start,
            velocity=self.velocity[keep],
            part=self.part[keep],
        )


def _concat(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]], spb: float) -> Notes:
    """Join per-part (pitch, onset beat, length beats, velocity) arrays, sorted by time."""
    pitch = np.concatenate([p[0] for p in parts]).astype(np.int64)
    onset = np.concatenate([p[1] for p in parts]) * spb
    length = np.concatenate([p[2] for p in parts]) * spb
    velocity = np.concatenate([p[3] for p in parts])
    part = np.concatenate([np.full(p[0].size, p[4], dtype=np.int64) for p in parts])
    order = np.lexsort((pitch, part, onset))
    return Notes(
        pitch=np.clip(pitch[order], 21, 108),
        start=onset[order],
        end=(onset + length)[order],
        velocity=np.clip(np.round(velocity[order]), 1, 127).astype(np.int64),
        part=part[order],
    )


def _degree_semitones(scale: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    degrees = np.asarray(degrees, dtype=np.int64)
    return scale[degrees % 7] + 12 * (degrees // 7)


def _nearest_octave(pitch_class: int, centre: float) -> int:
    return int(pitch_class + 12 * round((centre - pitch_class) / 12))


@dataclass(frozen=True)
class _Harmony:
    roots: np.ndarray  # scale degree of each bar's chord root
    kinds: np.ndarray  # index into CHORD_KINDS per bar
    dynamics: np.ndarray  # velocity offset per bar (phrase-level swells)


def _harmony(params: SongParams, bars: int, rng: np.random.Generator) -> _Harmony:
    progressions = MINOR_PROGRESSIONS if params.minor else MAJOR_PROGRESSIONS
    verse = progressions[int(rng.integers(len(progressions)))]
    chorus = progressions[int(rng.integers(len(progressions)))]
    section = (np.arange(bars) // 8) % 2  # alternate 8-bar verse/chorus
    position = np.arange(bars) % 4
    roots = np.where(section == 0, np.take(verse, position), np.take(chorus, position))
    kinds = rng.choice(len(CHORD_KINDS), size=bars, p=np.asarray(params.chord_mix))
    phase = rng.uniform(0, 2 * np.pi)
    dynamics = 7 * np.sin(2 * np.pi * np.arange(bars) / 16 + phase) + 4 * section + rng.normal(0, 2, bars)
    return _Harmony(roots=roots, kinds=kinds, dynamics=dynamics)


def _busyness(density: float) -> int:
    return 0 if density < 1.2 else (1 if density < 1.9 else 2)


def _pad(params: SongParams, harmony: _Harmony, scale: np.ndarray, rng: np.random.Generator):
    pattern = np.array(PAD_PATTERNS[params.rhythm][_busyness(params.density)], dtype=np.float64)
    centre = params.register - 10
    pitches, onsets, lengths, bars = [], [], [], []
    for kind_index, kind in enumerate(CHORD_KINDS):
        bar_ids = np.flatnonzero(harmony.kinds == kind_index)
        if bar_ids.size == 0:
            continue
        offsets = np.asarray(CHORD_DEGREES[kind])
        roots = harmony.roots[bar_ids]
        root_pitch = params.tonic + _degree_semitones(scale, roots)
        shift = 12 * np.round((centre - root_pitch) / 12)
        tones = root_pitch[:, None] + shift[:, None] + (
            _degree_semitones(scale, roots[:, None] + offsets) - _degree_semitones(scale, roots)[:, None]
        )
        for beat, length in pattern:
            pitches.append(tones.ravel())
            onsets.append(np.repeat(bar_ids * BEATS_PER_BAR + beat, offsets.size))
            lengths.append(np.full(tones.size, length))
            bars.append(np.repeat(bar_ids, offsets.size))
    bar = np.concatenate(bars)
    velocity = params.velocity - 14 + harmony.dynamics[bar] + rng.normal(0, 4, bar.size)
    return np.concatenate(pitches), np.concatenate(onsets), np.concatenate(lengths), velocity, PAD


def _bass(params: SongParams, harmony: _Harmony, scale: np.ndarray, rng: np.random.Generator):
    pattern = np.array(BASS_PATTERNS[params.rhythm][int(params.density >= 1.5)], dtype=np.float64)
    bars = harmony.roots.size
    bar = np.repeat(np.arange(bars), len(pattern))
    beat, length, offset = (np.tile(pattern[:, i], bars) for i in range(3))
    centre = 40 + (params.register - 64) / 4
    tonic = _nearest_octave(params.tonic, centre)
    pitch = tonic + _degree_semitones(scale, harmony.roots[bar] + offset.astype(np.int64))
    pitch = np.where(pitch > centre + 7, pitch - 12, pitch)
    accent = np.where(beat == 0, 6.0, 0.0)
    velocity = params.velocity - 6 + accent + harmony.dynamics[bar] + rng.normal(0, 5, bar.size)
    return pitch, bar * BEATS_PER_BAR + beat, length, velocity, BASS


def _lead_onsets(params: SongParams, bars: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Onset beats of the lead and whether each falls on a strong beat."""
    positions, weights = (np.asarray(x) for x in LEAD_GRIDS[params.rhythm])
    slot_prob = np.minimum(0.97, params.density * weights / weights.sum())
    beats = bars * BEATS_PER_BAR
    grid = (np.arange(beats)[:, None] + positions[None, :]).ravel()
    prob = np.tile(slot_prob, beats)
    phrase_rest = rng.random(bars // 2 + 1) < LEAD_REST_PROB
    resting = phrase_rest[(grid // (2 * BEATS_PER_BAR)).astype(np.int64)]
    keep = (rng.random(grid.size) < prob) & ~resting
    on_beat = np.tile(positions == 0, beats) & (np.floor(grid) % 2 == 0)
    return grid[keep], on_beat[keep]


def _snap_to_chord(degrees: np.ndarray, roots: np.ndarray) -> np.ndarray:
    moves = np.array([0, -1, 1, -2, 2])
    candidates = degrees[:, None] + moves[None, :]
    is_chord_tone = np.isin((candidates - roots[:, None]) % 7, (0, 2, 4))
    return candidates[np.arange(degrees.size), np.argmax(is_chord_tone, axis=1)]


def _lead(params: SongParams, harmony: _Harmony, scale: np.ndarray, rng: np.random.Generator):
    bars = harmony.roots.size
    onset, strong = _lead_onsets(params, bars, rng)
    steps = rng.choice([-2, -1, 0, 1, 2], size=onset.size, p=[0.15, 0.3, 0.1, 0.3, 0.15])
    leaps = np.where(rng.random(onset.size) < 0.08, rng.choice([-4, 4], size=onset.size), 0)
    walk = (np.cumsum(steps + leaps) + 7) % 28  # fold the walk into -7..7 degrees
    degrees = np.where(walk > 14, 28 - walk, walk) - 7
    bar = np.minimum((onset // BEATS_PER_BAR).astype(np.int64), bars - 1)
    degrees = np.where(strong, _snap_to_chord(degrees, harmony.roots[bar]), degrees)
    tonic = _nearest_octave(params.tonic, params.register)
    pitch = tonic + _degree_semitones(scale, degrees)
    gaps = np.diff(onset, append=onset[-1] + 1.0 if onset.size else 0.0)
    length = np.clip(gaps * params.articulation, 0.1, 2.0)
    accent = np.where(strong, 8.0, np.where(onset % 1 == 0, 3.0, -3.0))
    velocity = params.velocity + accent + harmony.dynamics[bar] + rng.normal(0, 6, onset.size)
    return pitch, onset, length, velocity, LEAD


def compose(params: SongParams, seconds: float, rng: np.random.Generator) -> Notes:
    """All notes of a song lasting at least `seconds`."""
    seconds_per_beat = 60.0 / params.bpm
    bars = int(np.ceil(seconds / seconds_per_beat / BEATS_PER_BAR)) + 1
    scale = MINOR if params.minor else MAJOR
    harmony = _harmony(params, bars, rng)
    parts = [
        _pad(params, harmony, scale, rng),
        _bass(params, harmony, scale, rng),
        _lead(params, harmony, scale, rng),
    ]
    return _concat(parts, seconds_per_beat)
