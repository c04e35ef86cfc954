"""A segment's media for the page: its audio as a WAV file and its MIDI as a piano roll."""

from __future__ import annotations

import io

import numpy as np

from encoders.base import BadInput
from encoders.media import check_audio, decode_midi, note_table
from encoders.pianoroll import PianoRollConfig, render_roll
from featurestore.errors import SearchError
from featurestore.schemas import MEDIA, SEGMENTS
from featurestore.store import Store, sql_quote

# A roll long enough for the synthetic corpus's longest segments (30 s) at 100 ms steps.
ROLL_CONFIG = PianoRollConfig(resolution_ms=100.0, steps=400, velocity="velocity", drums="keep")


class MediaMissing(SearchError):
    """The segment exists but has no audio (or no MIDI); the message says why."""


def _media_row(store: Store, segment_id: str, columns: list[str]) -> dict:
    found = store.read(MEDIA, ["segment_id", *columns], where=f"segment_id = {sql_quote(segment_id)}").to_pylist()
    if not found:
        if store.count(SEGMENTS, f"segment_id = {sql_quote(segment_id)}") == 0:
            raise SearchError(f"unknown segment {segment_id!r}")
        raise MediaMissing(f"segment {segment_id!r} has no row in media")
    return found[0]


def _status(store: Store, segment_id: str, modality: str) -> str:
    rows = store.read(SEGMENTS, [f"{modality}_status"], where=f"segment_id = {sql_quote(segment_id)}").to_pylist()
    status = rows[0][f"{modality}_status"] if rows else None
    return f" ({status})" if status else " (the source had none)"


def segment_wav(store: Store, segment_id: str) -> bytes:
    """The segment's stored waveform as a 16-bit PCM WAV at its own sample rate."""
    import soundfile

    row = _media_row(store, segment_id, ["audio", "sample_rate"])
    if row["audio"] is None:
        raise MediaMissing(f"segment {segment_id!r} has no audio{_status(store, segment_id, 'audio')}")
    try:
        wave = check_audio(np.asarray(row["audio"], dtype=np.float32), row["sample_rate"])
    except BadInput as exc:
        raise MediaMissing(f"segment {segment_id!r} has unplayable audio: {exc}") from None
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(wave, -1.0, 1.0), int(row["sample_rate"]), format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def segment_roll(store: Store, segment_id: str) -> dict:
    """The segment's MIDI drawn on ROLL_CONFIG's grid, cropped to the sounding pitches and steps."""
    row = _media_row(store, segment_id, ["midi"])
    if row["midi"] is None:
        raise MediaMissing(f"segment {segment_id!r} has no MIDI{_status(store, segment_id, 'midi')}")
    try:
        roll = render_roll(note_table(decode_midi(row["midi"])), ROLL_CONFIG).astype(np.float32)
    except BadInput as exc:
        raise MediaMissing(f"segment {segment_id!r} has unreadable MIDI: {exc}") from None
    pitches, steps = np.nonzero(roll)
    if not len(pitches):
        return {"segment_id": segment_id, "pitches": [], "seconds": [], "z": [], "active_cells": 0}
    low, high, last = int(pitches.min()), int(pitches.max()), int(steps.max())
    step_s = ROLL_CONFIG.resolution_ms / 1000.0
    return {"segment_id": segment_id, "pitches": list(range(low, high + 1)),
            "seconds": [round(i * step_s, 3) for i in range(last + 1)],
            "z": np.round(roll[low : high + 1, : last + 1], 3).tolist(), "active_cells": int(len(pitches))}
