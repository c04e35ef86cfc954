"""Per-colour musical styles and modality coverage of the synthetic corpus.

Each colour gets a distribution over song parameters, not fixed values: means
are spread so colours differ on average, while the spreads make neighbouring
colours overlap, so no single feature separates them. Colour names are checked
against featurestore.taxonomy; the label table itself lives only there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurestore.taxonomy import COLORS
from synth.errors import SynthError

RHYTHMS: tuple[str, ...] = ("straight", "swing", "syncopated")
CHORD_KINDS: tuple[str, ...] = ("triad", "seventh", "sus", "add9")
PITCH_NAMES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# How often a song's tonic comes from its colour's favoured tonics; the rest
# is uniform over 12, which keeps pitch-class profiles overlapping.
FAVOURED_TONIC_PROB = 0.8
# Dirichlet concentration of a song's chord mix around its colour's mix:
# small enough that songs of one colour differ audibly.
CHORD_MIX_CONCENTRATION = 10.0
# Scales every (mean, sd) spread of the style table. At 1.0 songs of one colour
# scatter so widely that 80 songs teach audio little: `chromatic inspect` on an
# 80-song corpus gives cross-song k-NN colour accuracy 0.31 (spectral) and 0.45
# (midistats) at 1.0, 0.55 and 0.55 at 0.6 (chance 0.125). 0.6 keeps colours
# overlapping (no feature separates them) while leaving a learnable signal.
STYLE_SPREAD = 0.6


@dataclass(frozen=True)
class ColorStyle:
    """Distributions of one colour's song parameters; pairs are (mean, sd)."""

    minor_prob: float
    tonics: tuple[int, ...]
    bpm: tuple[float, float]
    register: tuple[float, float]  # lead line centre, MIDI pitch
    density: tuple[float, float]  # lead onsets per beat
    rhythm: tuple[float, float, float]  # probabilities over RHYTHMS
    chords: tuple[float, float, float, float]  # mix over CHORD_KINDS
    velocity: tuple[float, float]
    lead_programs: tuple[int, ...]  # General MIDI programs
    rolloff: tuple[float, float]  # harmonic amplitude ~ h ** -rolloff
    attack: tuple[float, float]  # seconds
    decay: tuple[float, float]  # seconds
    noise: tuple[float, float]  # hiss and onset-transient level
    reverb: tuple[float, float]  # tail length, seconds


@dataclass(frozen=True)
class Coverage:
    """Probability that a segment has each modality (marginals over segments)."""

    audio: float
    midi: float
    lyrics: float

    def audio_given_midi(self) -> float:
        """P(audio | MIDI) that keeps the audio marginal while every MIDI-less
        segment must carry audio (a segment always has audio or MIDI)."""
        if self.midi <= 0:
            return 1.0
        return min(1.0, max(0.0, (self.audio - (1.0 - self.midi)) / self.midi))


STYLES: dict[str, ColorStyle] = {
    "Black": ColorStyle(
        0.8, (2, 7, 10), (80, 16), (57, 4), (1.0, 0.35), (0.55, 0.1, 0.35), (0.45, 0.25, 0.2, 0.1),
        (64, 11), (0, 19, 48), (1.9, 0.35), (0.03, 0.02), (0.7, 0.25), (0.04, 0.015), (1.3, 0.4),
    ),
    "Red": ColorStyle(
        0.4, (4, 9, 2), (136, 18), (64, 4), (2.1, 0.5), (0.7, 0.05, 0.25), (0.65, 0.15, 0.15, 0.05),
        (94, 11), (29, 30, 81), (1.0, 0.3), (0.006, 0.004), (0.3, 0.12), (0.05, 0.02), (0.5, 0.2),
    ),
    "Orange": ColorStyle(
        0.3, (9, 2, 7), (112, 16), (62, 4), (1.8, 0.45), (0.3, 0.5, 0.2), (0.35, 0.45, 0.1, 0.1),
        (87, 11), (4, 16, 61), (1.2, 0.3), (0.01, 0.006), (0.4, 0.15), (0.035, 0.015), (0.6, 0.25),
    ),
    "Yellow": ColorStyle(
        0.15, (0, 7, 5), (122, 16), (70, 4), (2.0, 0.5), (0.35, 0.15, 0.5), (0.35, 0.1, 0.25, 0.3),
        (84, 11), (0, 11, 80), (1.3, 0.3), (0.01, 0.006), (0.35, 0.15), (0.03, 0.012), (0.7, 0.3),
    ),
    "Green": ColorStyle(
        0.25, (7, 0, 2), (94, 16), (67, 4), (1.0, 0.35), (0.6, 0.15, 0.25), (0.3, 0.1, 0.35, 0.25),
        (67, 11), (88, 89, 73), (1.6, 0.35), (0.09, 0.04), (0.9, 0.3), (0.025, 0.01), (1.5, 0.4),
    ),
    "Blue": ColorStyle(
        0.6, (5, 10, 3), (86, 16), (60, 4), (1.4, 0.4), (0.2, 0.65, 0.15), (0.15, 0.6, 0.1, 0.15),
        (71, 11), (4, 26, 66), (1.5, 0.3), (0.02, 0.012), (0.6, 0.2), (0.03, 0.012), (1.0, 0.35),
    ),
    "Indigo": ColorStyle(
        0.7, (11, 4, 6), (98, 18), (56, 5), (1.2, 0.4), (0.4, 0.2, 0.4), (0.25, 0.3, 0.3, 0.15),
        (73, 12), (89, 19, 52), (1.8, 0.35), (0.06, 0.03), (0.8, 0.3), (0.035, 0.015), (1.4, 0.4),
    ),
    "Violet": ColorStyle(
        0.45, (1, 6, 8), (104, 16), (68, 4), (1.6, 0.45), (0.45, 0.3, 0.25), (0.2, 0.35, 0.15, 0.3),
        (78, 11), (11, 46, 49), (1.3, 0.3), (0.03, 0.02), (0.55, 0.2), (0.03, 0.012), (1.1, 0.35),
    ),
}

# Targets from the real corpus: audio ~85%, MIDI ~44%, lyrics ~60% overall;
# Green is instrumental, Yellow half sung, Blue rarely has MIDI.
COVERAGE: dict[str, Coverage] = {
    "Black": Coverage(audio=0.80, midi=0.45, lyrics=0.65),
    "Red": Coverage(audio=0.85, midi=0.55, lyrics=0.80),
    "Orange": Coverage(audio=0.85, midi=0.50, lyrics=0.75),
    "Yellow": Coverage(audio=0.85, midi=0.50, lyrics=0.50),
    "Green": Coverage(audio=0.85, midi=0.45, lyrics=0.00),
    "Blue": Coverage(audio=0.95, midi=0.12, lyrics=0.75),
    "Indigo": Coverage(audio=0.80, midi=0.45, lyrics=0.65),
    "Violet": Coverage(audio=0.85, midi=0.50, lyrics=0.70),
}

# Colours with an album, in taxonomy order (White has none, so no style).
ALBUM_COLORS: tuple[str, ...] = tuple(c for c in COLORS if c in STYLES)

_unknown = (set(STYLES) | set(COVERAGE)) - set(COLORS)
if _unknown or set(STYLES) != set(COVERAGE):
    raise SynthError(f"synth style tables disagree with the taxonomy colours {COLORS}: {sorted(_unknown)}")


@dataclass(frozen=True)
class Timbre:
    rolloff: float
    odd_boost: float  # >1 favours odd harmonics (hollow, clarinet-like)
    attack: float
    decay: float
    sustain: float
    noise: float
    reverb_seconds: float
    reverb_mix: float


@dataclass(frozen=True)
class SongParams:
    color: str
    tonic: int  # pitch class 0..11
    minor: bool
    bpm: float
    register: float
    density: float
    rhythm: str
    chord_mix: tuple[float, ...]  # probabilities over CHORD_KINDS
    articulation: float  # fraction of the gap to the next onset a lead note holds
    velocity: float
    lead_program: int
    timbre: Timbre

    @property
    def key_note(self) -> str:
        return PITCH_NAMES[self.tonic]

    @property
    def key_mode(self) -> str:
        return "minor" if self.minor else "major"


def _normal(rng: np.random.Generator, pair: tuple[float, float], low: float, high: float) -> float:
    return float(np.clip(rng.normal(pair[0], pair[1] * STYLE_SPREAD), low, high))


def _timbre(style: ColorStyle, rng: np.random.Generator) -> Timbre:
    return Timbre(
        rolloff=_normal(rng, style.rolloff, 0.5, 3.0),
        odd_boost=float(rng.uniform(0.8, 1.8)),
        attack=_normal(rng, style.attack, 0.002, 0.25),
        decay=_normal(rng, style.decay, 0.08, 2.0),
        sustain=float(rng.uniform(0.2, 0.6)),
        noise=_normal(rng, style.noise, 0.005, 0.12),
        reverb_seconds=_normal(rng, style.reverb, 0.2, 2.5),
        reverb_mix=float(rng.uniform(0.1, 0.35)),
    )


def sample_song_params(color: str, rng: np.random.Generator) -> SongParams:
    """One song's parameters, drawn around its colour's style."""
    style = STYLES[color]
    if rng.random() < FAVOURED_TONIC_PROB:
        tonic = int(rng.choice(style.tonics))
    else:
        tonic = int(rng.integers(12))
    chord_mix = rng.dirichlet(np.asarray(style.chords) * CHORD_MIX_CONCENTRATION + 0.05)
    return SongParams(
        color=color,
        tonic=tonic,
        minor=bool(rng.random() < style.minor_prob),
        bpm=round(_normal(rng, style.bpm, 56, 184), 1),
        register=_normal(rng, style.register, 48, 80),
        density=_normal(rng, style.density, 0.4, 3.5),
        rhythm=RHYTHMS[int(rng.choice(len(RHYTHMS), p=np.asarray(style.rhythm)))],
        chord_mix=tuple(float(p) for p in chord_mix),
        articulation=float(rng.uniform(0.45, 0.95)),
        velocity=_normal(rng, style.velocity, 35, 118),
        lead_program=int(rng.choice(style.lead_programs)),
        timbre=_timbre(style, rng),
    )
