"""Rendering notes to mono float32 audio: wavetable additive synthesis.

Each part of a song gets one single-period wavetable whose harmonic amplitudes
follow the song's timbre (rolloff, odd/even balance); a note reads its table at
its own frequency, shaped by an attack/decay/sustain/release envelope, plus a
short noise transient at the onset. A decaying-noise impulse response adds a
reverb-like tail. All per-sample work is numpy over a note's span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth.music import BASS, LEAD, PAD, Notes
from synth.styles import Timbre

TABLE_SIZE = 4096  # a power of two, so phase wrap-around is a bit mask
PEAK = 0.5
RELEASE_SECONDS = 0.12
TRANSIENT_SECONDS = 0.015
TRANSIENT_GAIN = 4.0  # onset click level per unit of timbre noise
HISS_PER_NOISE = 0.13  # hiss amplitude per unit of timbre noise, before normalising
REVERB_DECIMATION = 4
# Per part: extra rolloff (pads darker, bass rounder), harmonic count, gain,
# and attack multiplier (pads swell in slowly).
_PART_SHAPES = {
    LEAD: (0.0, 10, 1.0, 1.0),
    PAD: (0.5, 8, 0.28, 6.0),
    BASS: (0.3, 6, 0.7, 0.5),
}


@dataclass(frozen=True)
class Voice:
    table: np.ndarray
    gain: float
    attack: float


@dataclass(frozen=True)
class Instrument:
    """Everything needed to render one song's notes: per-part voices and a reverb."""

    voices: dict[int, Voice]
    timbre: Timbre
    impulse: np.ndarray
    sample_rate: int


def _wavetable(rolloff: float, odd_boost: float, harmonics: int) -> np.ndarray:
    numbers = np.arange(1, harmonics + 1)
    amplitudes = numbers ** -rolloff * np.where(numbers % 2 == 1, odd_boost, 1.0)
    phase = 2 * np.pi * np.arange(TABLE_SIZE) / TABLE_SIZE
    table = (amplitudes[:, None] * np.sin(numbers[:, None] * phase[None, :])).sum(axis=0)
    return (table / np.abs(table).max()).astype(np.float32)


def build_instrument(timbre: Timbre, sample_rate: int, rng: np.random.Generator) -> Instrument:
    voices = {
        part: Voice(
            table=_wavetable(timbre.rolloff + extra, timbre.odd_boost, harmonics),
            gain=gain,
            attack=timbre.attack * attack_scale,
        )
        for part, (extra, harmonics, gain, attack_scale) in _PART_SHAPES.items()
    }
    length = int(timbre.reverb_seconds * sample_rate / REVERB_DECIMATION)
    decay = np.exp(-6.9 * np.arange(length) / max(length, 1))  # -60 dB at the end
    impulse = (rng.standard_normal(length) * decay).astype(np.float32)
    impulse *= timbre.reverb_mix / np.sqrt(np.sum(impulse.astype(np.float64) ** 2) + 1e-12)
    return Instrument(voices=voices, timbre=timbre, impulse=impulse, sample_rate=sample_rate)


def _envelope(t: np.ndarray, duration: float, attack: float, timbre: Timbre) -> np.ndarray:
    envelope = np.exp(t * np.float32(-1.0 / timbre.decay))
    envelope *= np.float32(1.0 - timbre.sustain)
    envelope += np.float32(timbre.sustain)
    rising = int(np.searchsorted(t, attack))
    envelope[:rising] *= t[:rising] / np.float32(attack)
    released = int(np.searchsorted(t, duration))
    envelope[released:] *= np.exp((t[released:] - np.float32(duration)) * np.float32(-4.0 / RELEASE_SECONDS))
    return envelope


def _add_note(out: np.ndarray, instrument: Instrument, notes: Notes, i: int, rng: np.random.Generator) -> None:
    sr = instrument.sample_rate
    voice = instrument.voices[int(notes.part[i])]
    onset = notes.start[i] * sr
    first = max(int(np.ceil(onset)), 0)
    last = min(int((notes.end[i] + RELEASE_SECONDS) * sr), out.size)
    if last <= first:
        return
    t = ((np.arange(first, last) - onset) / sr).astype(np.float32)
    frequency = 440.0 * 2.0 ** ((int(notes.pitch[i]) - 69) / 12)
    index = (np.arange(first, last) - onset) * (frequency * TABLE_SIZE / sr)
    index = index.astype(np.int64) & (TABLE_SIZE - 1)
    amplitude = voice.gain * (notes.velocity[i] / 127.0) ** 1.5
    duration = notes.end[i] - notes.start[i]
    out[first:last] += amplitude * voice.table[index] * _envelope(t, duration, voice.attack, instrument.timbre)
    burst = min(last - first, int(TRANSIENT_SECONDS * sr))
    if burst > 0 and first == int(np.ceil(onset)):
        fade = np.linspace(1.0, 0.0, burst, dtype=np.float32)
        noise = rng.standard_normal(burst).astype(np.float32)
        out[first : first + burst] += amplitude * instrument.timbre.noise * TRANSIENT_GAIN * fade * noise


def _reverb(dry: np.ndarray, impulse: np.ndarray) -> np.ndarray:
    """Dry plus a tail convolved at a quarter of the sample rate: reverb tails are
    dark anyway, and the FFTs shrink fourfold."""
    if impulse.size == 0 or dry.size < REVERB_DECIMATION:
        return dry
    usable = dry.size - dry.size % REVERB_DECIMATION
    coarse = dry[:usable].reshape(-1, REVERB_DECIMATION).mean(axis=1)
    size = 1 << int(np.ceil(np.log2(coarse.size + impulse.size)))
    wet = np.fft.irfft(np.fft.rfft(coarse, size) * np.fft.rfft(impulse, size), size)[: coarse.size]
    positions = (np.arange(dry.size) - (REVERB_DECIMATION - 1) / 2) / REVERB_DECIMATION
    return dry + np.interp(positions, np.arange(coarse.size), wet).astype(np.float32)


def render(notes: Notes, seconds: float, instrument: Instrument, rng: np.random.Generator) -> np.ndarray:
    """`seconds` of mono float32 audio of `notes` (times from 0), peak PEAK."""
    out = np.zeros(int(round(seconds * instrument.sample_rate)), dtype=np.float32)
    for i in range(len(notes)):
        _add_note(out, instrument, notes, i, rng)
    out = _reverb(out, instrument.impulse)
    hiss = instrument.timbre.noise * HISS_PER_NOISE
    out += (hiss * rng.standard_normal(out.size)).astype(np.float32)
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > 0:
        out *= PEAK / peak
    return out.astype(np.float32, copy=False)
