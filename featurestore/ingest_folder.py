"""Folder ingest: audio (wav/flac) and MIDI files plus a CSV manifest.

For musicians who have files, not parquet. Each manifest row is converted to
one upstream-layout row (see featurestore/validate.py), so a folder goes through
exactly the same validation, rejects file and summary as a parquet file.

Manifest (`manifest.csv` in the folder, or any CSV given as `manifest`):
required columns segment_id, song_id, colour (or color); optional audio_file,
midi_file (paths relative to the folder), lyrics, concept, start_s, end_s, bpm,
key ("F# minor"). Without start_s the segment starts at 0; without end_s it
ends after the audio's duration, else the MIDI's, else at its start. A start_s or
end_s that is not a number rejects the row ("missing start/end"); a bpm that is
not a number is stored as null.

Audio is mixed to mono float32 at its native sample rate. A referenced file that
cannot be read keeps the segment with that modality marked absent and the reason.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from featurestore.errors import IngestError
from featurestore.validate import AUDIO_LOAD_ERROR, FOLDER_SCHEMA, MIDI_LOAD_ERROR

MANIFEST_NAME = "manifest.csv"
MANIFEST_REQUIRED: tuple[str, ...] = ("segment_id", "song_id", "colour")
MANIFEST_OPTIONAL: tuple[str, ...] = (
    "audio_file", "midi_file", "lyrics", "concept", "start_s", "end_s", "bpm", "key",
)


@dataclass(frozen=True)
class FolderInput:
    folder: Path
    manifest: Path


def find_manifest(folder: Path, manifest: Path | None) -> Path | None:
    """The manifest to use for `folder`: the given one, else `folder/manifest.csv` if present."""
    if manifest is not None:
        if not manifest.is_file():
            raise IngestError(f"manifest {manifest} does not exist; pass an existing CSV with --manifest")
        return manifest
    default = folder / MANIFEST_NAME
    return default if default.is_file() else None


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Manifest rows with lower-cased headers; `color` is accepted for `colour`."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        headers = [h.strip().lower() for h in (reader.fieldnames or [])]
        rows = [{h: (v or "").strip() for h, v in zip(headers, row.values())} for row in reader]
    if "color" in headers and "colour" not in headers:
        headers = [("colour" if h == "color" else h) for h in headers]
        for row in rows:
            row["colour"] = row.pop("color")
    missing = [c for c in MANIFEST_REQUIRED if c not in headers]
    if missing:
        raise IngestError(
            f"manifest {path} lacks required column(s) {', '.join(missing)}; it has: "
            f"{', '.join(headers) or '(no header)'}. Required: {', '.join(MANIFEST_REQUIRED)} "
            f"(or color); optional: {', '.join(MANIFEST_OPTIONAL)}"
        )
    return rows


def _load_audio(path: Path) -> tuple[bytes | None, int | None, float | None, str | None]:
    """-> (little-endian float32 mono bytes, sample rate, seconds, load error)."""
    import soundfile

    try:
        samples, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, OSError, ...
        return None, None, None, f"{path.name}: {exc}"
    mono = samples.mean(axis=1, dtype=np.float32).astype("<f4")
    return mono.tobytes(), int(sample_rate), mono.size / sample_rate, None


def _load_midi(path: Path) -> tuple[bytes | None, str | None]:
    try:
        return path.read_bytes(), None
    except OSError as exc:
        return None, f"{path.name}: {exc.strerror or exc}"


def _midi_seconds(data: bytes) -> float | None:
    import miditoolkit

    try:
        midi = miditoolkit.MidiFile(file=io.BytesIO(data))
        return float(midi.get_tick_to_time_mapping()[midi.max_tick])
    except Exception:  # unparseable MIDI is reported by validation; here it only has no length
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _span(entry: dict, audio_seconds: float | None, midi: bytes | None) -> tuple[float | None, float | None]:
    start = _float(entry.get("start_s")) if entry.get("start_s") else 0.0
    if entry.get("end_s"):
        return start, _float(entry["end_s"])
    length = audio_seconds if audio_seconds is not None else (_midi_seconds(midi) if midi else None)
    return start, (start + length if start is not None and length is not None else start)


def _media(entry: dict, folder: Path) -> dict:
    audio = rate = seconds = audio_error = midi = midi_error = None
    if entry.get("audio_file"):
        audio, rate, seconds, audio_error = _load_audio(folder / entry["audio_file"])
    if entry.get("midi_file"):
        midi, midi_error = _load_midi(folder / entry["midi_file"])
    return dict(audio=audio, rate=rate, seconds=seconds, audio_error=audio_error, midi=midi, midi_error=midi_error)


def upstream_row(entry: dict, folder: Path) -> dict:
    """One manifest row -> one upstream-layout row (files read, audio mixed to mono)."""
    media = _media(entry, folder)
    start, end = _span(entry, media["seconds"], media["midi"])
    note, _, mode = (entry.get("key") or "").partition(" ")
    return {
        "segment_id": entry.get("segment_id"), "song_id": entry.get("song_id"),
        "rainbow_color": entry.get("colour"), "start_seconds": start, "end_seconds": end,
        "lyric_text": entry.get("lyrics"), "concept": entry.get("concept"),
        "audio_waveform": media["audio"], "audio_sample_rate": media["rate"], "midi_binary": media["midi"],
        "bpm": _float(entry.get("bpm")), "key_signature_note": note or None, "key_signature_mode": mode or None,
        AUDIO_LOAD_ERROR: media["audio_error"], MIDI_LOAD_ERROR: media["midi_error"],
    }


def folder_batches(source: FolderInput, batch_bytes: int) -> Iterator[pa.RecordBatch]:
    """Upstream-layout batches of at most ~batch_bytes of media (at least one row each)."""
    rows, size = [], 0
    for entry in read_manifest(source.manifest):
        row = upstream_row(entry, source.folder)
        rows.append(row)
        size += len(row["audio_waveform"] or b"") + len(row["midi_binary"] or b"")
        if size >= batch_bytes:
            yield pa.RecordBatch.from_pylist(rows, schema=FOLDER_SCHEMA)
            rows, size = [], 0
    if rows:
        yield pa.RecordBatch.from_pylist(rows, schema=FOLDER_SCHEMA)
