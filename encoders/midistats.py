"""`midistats`: a fixed-length vector of symbolic-music statistics of one MIDI.

Weight-free, so a fresh machine can run the pipeline with no downloads. All
times go through the tempo map (see encoders/media.py). Unbounded quantities
are log-compressed (`log1p`) and pitches/velocities scaled by 1/127 so every
entry sits on a comparable scale for the fusion MLP. Pitch-based features
(pitch classes, melody intervals, register, polyphony) use pitched notes only;
a drum-only file leaves them at zero and shows up in `drum_fraction`. The
order of the vector is `FEATURE_NAMES`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from encoders.base import BadInput, Encoder, EncoderConfig, EncoderInput
from encoders.media import NoteTable, check_modality, decode_midi, note_table
from encoders.registry import register
from encoders.errors import EncoderError

INTERVAL_BINS = 13  # 0..12 semitones one bin each, plus one bin for leaps > an octave
GRIDS = (("on_beat", 1), ("on_eighth", 2), ("on_sixteenth", 4))  # subdivisions per beat
# Onsets within 1/24 beat of a grid line count as on it (~20 ms at 120 bpm).
GRID_TOLERANCE_BEATS = 1 / 24

# Krumhansl-Kessler key profiles (C major / C minor): correlating the pitch-class
# histogram with all 12 rotations gives key-independent major/minor strength.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

FEATURE_NAMES: tuple[str, ...] = (
    *(f"pitch_class_{pc}" for pc in range(12)),
    "key_major_strength",
    "key_minor_strength",
    *(f"interval_{i}" for i in range(INTERVAL_BINS)),
    "interval_over_octave",
    "note_density_log",
    "polyphony_mean_log",
    "polyphony_max_log",
    "pitch_mean",
    "pitch_std",
    "pitch_min",
    "pitch_max",
    "velocity_mean",
    "velocity_std",
    "ioi_mean_log",
    "ioi_std_log",
    "ioi_median_log",
    "ioi_cv",
    *(name for name, _ in GRIDS),
    "duration_mean_log",
    "duration_std_log",
    "drum_fraction",
    "distinct_pitch_classes",
    "tempo_log2_rel_120",
    "span_log",
)


# General MIDI's 16 instrument families, 8 programs each (program // 8).
PROGRAM_FAMILIES: tuple[str, ...] = (
    "piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic", "percussive", "sound_effects",
)
INSTRUMENT_NAMES: tuple[str, ...] = (
    *(f"family_{family}" for family in PROGRAM_FAMILIES),
    "instruments_log",
)
PART_NAMES: tuple[str, ...] = (
    "onsets_per_beat_log", "on_triplet",
    "top_part_onsets_per_beat_log", "top_part_length_beats_log",
    "bottom_part_onsets_per_beat_log", "bottom_part_length_beats_log",
)
# feature set -> the blocks appended to v1's vector (FEATURE_NAMES), in order
FEATURE_SETS: dict[str, tuple[str, ...]] = {"basic": (), "instruments": ("instruments",),
                                            "parts": ("instruments", "parts")}


@dataclass(frozen=True)
class MidiStatsConfig(EncoderConfig):
    """features: "basic" (FEATURE_NAMES: the v1 vector), "instruments" (then INSTRUMENT_NAMES: what share of
    the pitched notes each General MIDI family plays, and how many programs play) or "parts" (then also
    PART_NAMES: rhythm counted in beats)."""

    added_fields = ("features",)  # `midistats:v1` tables were encoded before it existed ({} params)
    features: str = "basic"

    def __post_init__(self):
        if self.features not in FEATURE_SETS:
            raise EncoderError(f"midistats features={self.features!r}; choose one of {', '.join(FEATURE_SETS)}")


@register("midistats")
class MidiStatsEncoder(Encoder):
    config_cls = MidiStatsConfig
    modalities = ("midi",)
    kind = "vector"
    dtype = "float32"
    code_version = "1"

    config: MidiStatsConfig

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(feature_names(self.config)),)

    def prepare(self, item: EncoderInput, modality: str) -> np.ndarray:
        check_modality(self, modality)
        if item.midi is None:
            raise BadInput("no MIDI in this item")
        return midi_statistics(note_table(decode_midi(item.midi)), self.config)

    def encode_batch(self, prepared: list[np.ndarray]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, *self.shape), dtype=np.float32)
        return np.stack(prepared).astype(np.float32, copy=False)


def feature_names(config: MidiStatsConfig) -> tuple[str, ...]:
    return FEATURE_NAMES + tuple(name for block in FEATURE_SETS[config.features] for name in _BLOCKS[block][0])


def midi_statistics(notes: NoteTable, config: MidiStatsConfig = MidiStatsConfig()) -> np.ndarray:
    if notes.size == 0:
        raise BadInput("MIDI has no notes")
    pitched = _subset(notes, ~notes.is_drum)
    span_s = max(float(notes.end_s.max()), 1e-3)
    pitch_classes = _pitch_class_histogram(pitched)
    parts = [
        pitch_classes,
        _key_strengths(pitch_classes),
        _interval_histogram(pitched),
        [np.log1p(notes.size / span_s)],
        _polyphony(pitched),
        _register(pitched),
        [notes.velocity.mean() / 127.0, notes.velocity.std() / 127.0],
        _inter_onset_stats(notes),
        _grid_fractions(notes),
        _duration_stats(notes),
        [float(notes.is_drum.mean())],
        [np.unique(pitched.pitch % 12).size / 12.0],
        [_average_tempo_log2(notes)],
        [np.log1p(span_s)],
    ]
    parts += [_BLOCKS[block][1](notes, pitched) for block in FEATURE_SETS[config.features]]
    vector = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]).astype(np.float32)
    if vector.shape != (len(feature_names(config)),) or not np.all(np.isfinite(vector)):
        raise BadInput(f"MIDI statistics came out malformed (shape {vector.shape}, finite={np.isfinite(vector).all()})")
    return vector


def _subset(notes: NoteTable, mask: np.ndarray) -> NoteTable:
    return NoteTable(
        pitch=notes.pitch[mask], velocity=notes.velocity[mask], start_tick=notes.start_tick[mask],
        end_tick=notes.end_tick[mask], start_s=notes.start_s[mask], end_s=notes.end_s[mask],
        is_drum=notes.is_drum[mask], ticks_per_beat=notes.ticks_per_beat, program=notes.program[mask],
    )


def _normalised(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts, dtype=np.float64)


def _pitch_class_histogram(pitched: NoteTable) -> np.ndarray:
    # Duration weighting lets held chord tones outweigh passing notes; zero-length
    # notes still count a little so a file of blips is not all zeros.
    weights = np.maximum(pitched.end_s - pitched.start_s, 1e-3)
    return _normalised(np.bincount(pitched.pitch % 12, weights=weights, minlength=12).astype(np.float64))


def _instrument_families(pitched: NoteTable) -> np.ndarray:
    """Share of pitched notes per General MIDI family, then log1p of the number of distinct programs.

    Drums are left out: on channel 10 a program number names a drum kit, not an instrument (their share
    is `drum_fraction`). A file with no program changes plays program 0 (piano) throughout, as GM says.
    """
    if pitched.size == 0:
        return np.zeros(len(INSTRUMENT_NAMES))
    program = pitched.program.astype(np.int64)
    families = _normalised(np.bincount(program // 8, minlength=len(PROGRAM_FAMILIES)).astype(np.float64))
    return np.append(families, np.log1p(np.unique(program).size))


def _part_rhythms(notes: NoteTable, pitched: NoteTable) -> list[float]:
    """Rhythm in beats (tempo-free): distinct onsets per beat, the share on a triplet grid (and not on the
    beat), then onsets per beat and mean note length of the highest- and the lowest-sounding part
    (a part: the notes of one program), e.g. a melody over a bass line."""
    beats = max((int(notes.end_tick.max()) - int(notes.start_tick.min())) / notes.ticks_per_beat, 1.0)
    onsets = np.unique(notes.start_tick) / notes.ticks_per_beat
    triplet = np.abs(onsets * 3 - np.round(onsets * 3)) / 3 <= GRID_TOLERANCE_BEATS
    on_beat = np.abs(onsets - np.round(onsets)) <= GRID_TOLERANCE_BEATS
    out = [np.log1p(onsets.size / beats), float(np.mean(triplet & ~on_beat))]
    if pitched.size == 0:
        return out + [0.0] * 4
    programs = np.unique(pitched.program)
    means = [pitched.pitch[pitched.program == p].mean() for p in programs]
    for program in (programs[int(np.argmax(means))], programs[int(np.argmin(means))]):
        part = pitched.program == program
        length = (pitched.end_tick[part] - pitched.start_tick[part]).mean() / notes.ticks_per_beat
        out += [np.log1p(np.unique(pitched.start_tick[part]).size / beats), np.log1p(length)]
    return out


# block -> (its names, its values from (all notes, pitched notes))
_BLOCKS = {
    "instruments": (INSTRUMENT_NAMES, lambda notes, pitched: _instrument_families(pitched)),
    "parts": (PART_NAMES, _part_rhythms),
}


def _key_strengths(pitch_classes: np.ndarray) -> list[float]:
    """Best correlation with any major key and with any minor key (0 when undefined)."""
    if pitch_classes.std() == 0:
        return [0.0, 0.0]
    strengths = []
    for profile in (MAJOR_PROFILE, MINOR_PROFILE):
        rotations = np.stack([np.roll(profile, shift) for shift in range(12)])
        strengths.append(float(max(np.corrcoef(pitch_classes, r)[0, 1] for r in rotations)))
    return strengths


def _interval_histogram(pitched: NoteTable) -> np.ndarray:
    """Successive intervals of the skyline melody (highest pitch at each onset)."""
    if pitched.size < 2:
        return np.zeros(INTERVAL_BINS + 1)
    # Notes are sorted by (start, pitch): the last note of each onset group is its top.
    last_of_group = np.r_[np.diff(pitched.start_tick) != 0, True]
    melody = pitched.pitch[last_of_group].astype(np.int64)
    steps = np.minimum(np.abs(np.diff(melody)), INTERVAL_BINS)
    return _normalised(np.bincount(steps, minlength=INTERVAL_BINS + 1).astype(np.float64))


def _polyphony(pitched: NoteTable) -> list[float]:
    """log1p of the time-weighted mean and the maximum number of sounding notes."""
    if pitched.size == 0:
        return [0.0, 0.0]
    span = pitched.end_s.max() - pitched.start_s.min()
    durations = pitched.end_s - pitched.start_s
    mean = durations.sum() / span if span > 0 else 1.0
    starts, ends = np.sort(pitched.start_s), np.sort(pitched.end_s)
    # Sounding at each onset: started at or before it and not yet ended.
    sounding = np.searchsorted(starts, pitched.start_s, "right") - np.searchsorted(ends, pitched.start_s, "right")
    return [float(np.log1p(mean)), float(np.log1p(max(int(sounding.max()), 1)))]


def _register(pitched: NoteTable) -> list[float]:
    if pitched.size == 0:
        return [0.0] * 4
    p = pitched.pitch.astype(np.float64) / 127.0
    return [p.mean(), p.std(), p.min(), p.max()]


def _inter_onset_stats(notes: NoteTable) -> list[float]:
    """IOIs between distinct onsets (chords count once): log mean/std/median and CV."""
    onsets = np.unique(notes.start_s)
    if onsets.size < 2:
        return [0.0] * 4
    ioi = np.diff(onsets)
    cv = ioi.std() / ioi.mean() if ioi.mean() > 0 else 0.0
    return [np.log1p(ioi.mean()), np.log1p(ioi.std()), np.log1p(np.median(ioi)), cv]


def _grid_fractions(notes: NoteTable) -> list[float]:
    """Fraction of distinct onsets on the beat / eighth / sixteenth grid.

    Measured in ticks: beats are tick multiples of ticks_per_beat whatever the
    tempo map says, so tempo changes cannot shift the grid.
    """
    beats = np.unique(notes.start_tick) / notes.ticks_per_beat
    fractions = []
    for _, per_beat in GRIDS:
        pos = beats * per_beat
        off = np.abs(pos - np.round(pos)) / per_beat
        fractions.append(float(np.mean(off <= GRID_TOLERANCE_BEATS)))
    return fractions


def _duration_stats(notes: NoteTable) -> list[float]:
    durations = notes.end_s - notes.start_s
    return [np.log1p(durations.mean()), np.log1p(durations.std())]


def _average_tempo_log2(notes: NoteTable) -> float:
    """log2(mean bpm / 120) over [0, last note end]: beats elapsed per minute."""
    last_tick, last_s = int(notes.end_tick.max()), float(notes.end_s.max())
    if last_tick == 0 or last_s <= 0:
        return 0.0
    bpm = (last_tick / notes.ticks_per_beat) / last_s * 60.0
    return float(np.log2(bpm / 120.0))
