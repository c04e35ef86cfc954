"""Shared decoding helpers for encoders: MIDI bytes and audio samples.

Every helper raises `BadInput` with a reason the encode job records as the
item's status, so one broken file never stops a job and is never dropped
silently. The same helpers serve the encode job and the scorer, so a stored
vector and a freshly scored one go through identical decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encoders.base import BadInput, Encoder
from encoders.errors import EncoderError
from encoders.smf import SmfContents, read_smf

# soxr's high-quality mode is deterministic and much faster than the
# polyphase/kaiser resamplers; pinned so vectors never depend on librosa's default.
RESAMPLE_TYPE = "soxr_hq"


def check_modality(encoder: Encoder, modality: str) -> None:
    """Refuse a modality the encoder cannot read (a caller's mistake, not bad data)."""
    if modality not in encoder.modalities:
        raise EncoderError(
            f"encoder {encoder.name!r} cannot read modality {modality!r}; it reads: {', '.join(encoder.modalities)}"
        )


def decode_midi(data: bytes) -> SmfContents:
    """Parse standard MIDI file bytes (encoders/smf.py); BadInput with the reason on failure.

    The reader reproduces what miditoolkit read (clip=True: out-of-range data
    bytes that real files often carry are clipped), so vectors stored before
    the switch still match freshly computed ones.
    """
    if data is None or len(data) == 0:
        raise BadInput("MIDI data is empty (0 bytes)")
    return read_smf(data)


def load_midi_path(path: str | Path) -> bytes:
    """Read a .mid file's bytes (decoding is left to `decode_midi`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read MIDI file {path}: {exc.strerror or exc}") from exc
    if not data:
        raise BadInput(f"MIDI file {path} is empty (0 bytes)")
    return data


def check_audio(samples, sample_rate) -> np.ndarray:
    """Validate a mono waveform; return it as contiguous float32.

    Integer PCM is scaled to [-1, 1]. Multi-channel input is refused rather than
    guessed at: which axis holds channels is ambiguous (use `load_audio_path`).
    """
    if samples is None:
        raise BadInput("no audio samples")
    if sample_rate is None or not np.isfinite(sample_rate) or sample_rate <= 0:
        raise BadInput(f"audio has no valid sample rate (got {sample_rate!r})")
    wave = np.asarray(samples)
    if wave.ndim != 1:
        raise BadInput(f"audio must be mono 1-D samples, got shape {wave.shape}; mix channels down first")
    if wave.size == 0:
        raise BadInput("audio is empty (0 samples)")
    if np.issubdtype(wave.dtype, np.integer):
        wave = wave.astype(np.float32) / float(np.iinfo(wave.dtype).max)
    elif not np.issubdtype(wave.dtype, np.floating):
        raise BadInput(f"audio samples must be numeric, got dtype {wave.dtype}")
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    bad = int(np.count_nonzero(~np.isfinite(wave)))
    if bad:
        raise BadInput(f"audio has {bad} non-finite samples (NaN/inf) of {wave.size}")
    return wave


def resample(samples: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Deterministic resampling with a pinned method; a no-op when rates match."""
    if int(sr_in) == int(sr_out):
        return np.asarray(samples, dtype=np.float32)
    import librosa

    out = librosa.resample(
        np.asarray(samples, dtype=np.float32), orig_sr=int(sr_in), target_sr=int(sr_out), res_type=RESAMPLE_TYPE
    )
    return np.ascontiguousarray(out, dtype=np.float32)


def load_audio_path(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 mono (channels averaged) and its sample rate."""
    import soundfile

    try:
        data, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        raise BadInput(f"cannot read audio file {path}: {exc}") from exc
    return check_audio(data.mean(axis=1), sr), int(sr)


@dataclass(frozen=True)
class NoteTable:
    """All notes of a MIDI file as parallel arrays, times already in seconds."""

    pitch: np.ndarray  # int16
    velocity: np.ndarray  # int16
    start_tick: np.ndarray  # int64
    end_tick: np.ndarray  # int64
    start_s: np.ndarray  # float64
    end_s: np.ndarray  # float64
    is_drum: np.ndarray  # bool
    ticks_per_beat: int
    program: np.ndarray  # int16, General MIDI program 0-127 (drums: their channel's, meaningless)

    @property
    def size(self) -> int:
        return int(self.pitch.size)


def tempo_map(midi: SmfContents) -> tuple[np.ndarray, np.ndarray]:
    """(change ticks, bpm at each) sorted by tick; one tempo per tick (the last wins).

    Tempo events are collected track by track without sorting (as miditoolkit
    did), so one outside track 0 could land out of order; sorting fixes that.
    """
    collected = zip(midi.tempo_ticks.tolist(), midi.tempo_bpm.tolist())
    changes = sorted(((int(tick), float(bpm)) for tick, bpm in collected), key=lambda c: c[0])
    by_tick = dict(changes)
    if not by_tick or 0 not in by_tick:
        by_tick[0] = 120.0  # the MIDI standard's default tempo
    ticks = np.array(sorted(by_tick), dtype=np.int64)
    bpm = np.array([by_tick[t] for t in ticks], dtype=np.float64)
    if not np.all(np.isfinite(bpm)) or np.any(bpm <= 0):
        raise BadInput(f"MIDI tempo map has invalid tempos: {sorted(set(bpm.tolist()))}")
    return ticks, bpm


def ticks_to_seconds(ticks: np.ndarray, midi: SmfContents) -> np.ndarray:
    """Tick positions -> seconds through the whole tempo map (piecewise linear)."""
    change_ticks, bpm = tempo_map(midi)
    sec_per_tick = 60.0 / (bpm * midi.ticks_per_beat)
    segment_start_s = np.concatenate(([0.0], np.cumsum(np.diff(change_ticks) * sec_per_tick[:-1])))
    ticks = np.asarray(ticks, dtype=np.int64)
    which = np.searchsorted(change_ticks, ticks, side="right") - 1
    return segment_start_s[which] + (ticks - change_ticks[which]) * sec_per_tick[which]


def note_table(midi: SmfContents) -> NoteTable:
    """Every note of every track; type-1 files share track 0's tempo map."""
    arr = midi.notes.copy()
    arr[:, 3] = np.maximum(arr[:, 3], arr[:, 2])  # an end before its start cannot sound
    # Sorting by (start, pitch) makes every downstream statistic order-independent.
    arr = arr[np.lexsort((arr[:, 0], arr[:, 2]))]
    return NoteTable(
        pitch=arr[:, 0].astype(np.int16),
        velocity=arr[:, 1].astype(np.int16),
        start_tick=arr[:, 2],
        end_tick=arr[:, 3],
        start_s=ticks_to_seconds(arr[:, 2], midi),
        end_s=ticks_to_seconds(arr[:, 3], midi),
        is_drum=arr[:, 4].astype(bool),
        ticks_per_beat=int(midi.ticks_per_beat),
        program=arr[:, 5].astype(np.int16),
    )
