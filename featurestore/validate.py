"""Ingest row validation: upstream-layout rows -> normalised `segments` + `media` rows.

Every input (a parquet file in the upstream layout, or a folder + CSV manifest
converted to that layout) goes through `validate_batch`, so the rules live here once.

Bad-row decisions (each one counted in the ingest summary, never silent):

* reject the row (written to the rejects file with its reason, nothing stored):
  - null/empty `segment_id`                       -> "missing segment_id"
  - `segment_id` already accepted in this run     -> "duplicate segment_id" (first accepted row wins)
  - null/empty `song_id`                          -> "missing song_id"
  - colour null or not in the taxonomy            -> "unknown colour"
  - a present mode label that parse_modes refuses -> "invalid mode label"
  - null/NaN start or end seconds                 -> "missing start/end"
  - end < start                                   -> "end before start"
  - a metadata value of the wrong type (e.g. text in start_seconds) -> "malformed value"
* keep the segment, drop one modality (has_X False, X_status "error: <why>"):
  - audio bytes empty / length not a multiple of 4 / NaN or inf samples / every sample zero
  - audio present but sample rate null or <= 0
  - MIDI bytes that miditoolkit cannot parse
  - has_audio/has_midi true upstream but no bytes; a folder file that cannot be read
  (the bytes decide: valid bytes make has_X true whatever the upstream flag says)
* keep the segment, drop its lyrics or concept (null text, `lyrics_status`/`concept_status`
  "absent: <why>"): text with nothing visible once whitespace, control and zero-width
  characters are removed (NUL-only, U+200B-only, ...); featurestore/text.py holds the rule
* normalise only what carries no information: "" lyrics/concept -> null; a null or
  blank mode label -> derived from the colour (taxonomy.py); a NaN bpm -> null.
"""

from __future__ import annotations

import io
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa

from featurestore.lineage import DIGEST_COLUMN, ROW_DIGEST, audio_digest, midi_digest, row_digest, text_digest
from featurestore.schemas import MEDIA_SCHEMA, SEGMENTS_SCHEMA
from featurestore.text import BLANK_REASON, visible_text_or_none
from featurestore.taxonomy import DIMENSIONS, TaxonomyError, canonical_color, color_modes, parse_modes

REQUIRED_COLUMNS: tuple[str, ...] = ("segment_id", "song_id", "rainbow_color", "start_seconds", "end_seconds")
LABEL_COLUMNS: dict[str, str] = {
    "temporal": "rainbow_color_temporal_mode",
    "spatial": "rainbow_color_objectional_mode",  # upstream calls the spatial dimension "objectional"
    "ontological": "rainbow_color_ontological_mode",
}
AUDIO_COLUMN = "audio_waveform"
MIDI_COLUMN = "midi_binary"
# Set only by folder ingest: why a referenced file could not be read.
AUDIO_LOAD_ERROR = "audio_load_error"
MIDI_LOAD_ERROR = "midi_load_error"

UPSTREAM_SCHEMA = pa.schema(
    [
        pa.field("segment_id", pa.string()),
        pa.field("song_id", pa.string()),
        pa.field("rainbow_color", pa.string()),
        *(pa.field(column, pa.string()) for column in LABEL_COLUMNS.values()),
        pa.field("start_seconds", pa.float64()),
        pa.field("end_seconds", pa.float64()),
        pa.field("lyric_text", pa.string()),
        pa.field("concept", pa.string()),
        pa.field(AUDIO_COLUMN, pa.large_binary()),
        pa.field("audio_sample_rate", pa.int64()),
        pa.field(MIDI_COLUMN, pa.large_binary()),
        pa.field("has_audio", pa.bool_()),
        pa.field("has_midi", pa.bool_()),
        pa.field("bpm", pa.float64()),
        pa.field("key_signature_note", pa.string()),
        pa.field("key_signature_mode", pa.string()),
    ]
)
UPSTREAM_COLUMNS: tuple[str, ...] = tuple(UPSTREAM_SCHEMA.names)
BLOB_COLUMNS: tuple[str, ...] = (AUDIO_COLUMN, MIDI_COLUMN)
FOLDER_SCHEMA = UPSTREAM_SCHEMA.append(pa.field(AUDIO_LOAD_ERROR, pa.string())).append(
    pa.field(MIDI_LOAD_ERROR, pa.string())
)


class RowRejected(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Reject:
    """One rejected input row; `row` is its 0-based index in its input file."""

    segment_id: str | None
    row: int
    reason: str
    detail: str


@dataclass(frozen=True)
class Dropped:
    """A modality dropped from a kept segment."""

    modality: str  # audio | midi
    reason: str
    detail: str = ""

    @property
    def status(self) -> str:
        return f"error: {self.reason}" + (f" ({self.detail})" if self.detail else "")

    @property
    def counter_key(self) -> str:
        return f"{self.modality}: {self.reason}"


@dataclass
class ValidatedBatch:
    segments: pa.Table
    media: pa.Table
    rejects: list[Reject] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)


def missing_required(columns) -> list[str]:
    present = set(columns)
    return [c for c in REQUIRED_COLUMNS if c not in present]


def wrong_blob_types(schema: pa.Schema) -> list[str]:
    """'column (type)' for each blob column that is not binary (e.g. audio stored as a list)."""
    binary = (pa.types.is_binary, pa.types.is_large_binary)
    return [
        f"{name} ({schema.field(name).type})"
        for name in BLOB_COLUMNS
        if name in schema.names and not any(check(schema.field(name).type) for check in binary)
    ]


# -- media checks ---------------------------------------------------------------
def check_audio(data, sample_rate, flagged: bool | None, load_error: str | None):
    """-> (float32 samples or None, Dropped or None). `data` is bytes-like or None."""
    if load_error:
        return None, Dropped("audio", "unreadable audio file", load_error)
    if data is None:
        missing = Dropped("audio", "has_audio is true but no waveform") if flagged else None
        return None, missing
    size = len(data)
    if size == 0:
        return None, Dropped("audio", "empty waveform")
    if size % 4:
        return None, Dropped("audio", "waveform byte length not a multiple of 4", f"{size} bytes")
    if sample_rate is None or sample_rate <= 0:
        return None, Dropped("audio", "missing or non-positive sample rate", f"sample rate {sample_rate}")
    samples = np.frombuffer(data, dtype="<f4")
    # A float64 sum is finite iff every sample is (it cannot overflow), and needs no
    # per-sample temporary the size of the waveform, unlike np.isfinite(...).all().
    if not math.isfinite(float(np.sum(samples, dtype=np.float64))):
        return None, Dropped("audio", "waveform holds NaN or inf")
    if not np.count_nonzero(samples):  # silence carries nothing an encoder could learn from
        return None, Dropped("audio", "silent waveform (every sample is zero)", f"{samples.size} samples")
    return samples, None


def check_midi(data, flagged: bool | None, load_error: str | None):
    """-> (MIDI bytes or None, Dropped or None)."""
    if load_error:
        return None, Dropped("midi", "unreadable MIDI file", load_error)
    if data is None:
        return None, (Dropped("midi", "has_midi is true but no MIDI bytes") if flagged else None)
    blob = bytes(data)
    try:
        import miditoolkit

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            miditoolkit.MidiFile(file=io.BytesIO(blob))
    except Exception as exc:  # mido/miditoolkit raise many types (OSError, EOFError, KeyError, ...)
        return None, Dropped("midi", "MIDI cannot be parsed", str(exc) or type(exc).__name__)
    return blob, None


# -- label and metadata checks --------------------------------------------------
def _text(value) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _number(value) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _labels(color: str, record: dict) -> dict[str, str | None]:
    derived = color_modes(color)
    labels = {}
    for dimension in DIMENSIONS:
        raw = _text(record.get(LABEL_COLUMNS[dimension]))
        if raw is None:
            labels[dimension] = derived.label_string(dimension)
            continue
        try:
            modes = parse_modes(dimension, raw)
        except TaxonomyError as exc:
            raise RowRejected("invalid mode label", str(exc)) from None
        labels[dimension] = ", ".join(modes) or None
    return labels


def _key(note, mode) -> str | None:
    note = _text(note)
    if note is None:
        return None
    mode = _text(mode)
    return f"{note} {mode.lower()}" if mode else note


def _span(record: dict) -> tuple[float, float]:
    start, end = _number(record.get("start_seconds")), _number(record.get("end_seconds"))
    if start is None or end is None:
        raise RowRejected("missing start/end", f"start_seconds={start}, end_seconds={end}")
    if end < start:
        raise RowRejected("end before start", f"end_seconds {end} < start_seconds {start}")
    return start, end


def normalise_segment(record: dict, seen_ids: set[str]) -> dict:
    """Upstream metadata -> a `segments` row (media fields filled later); raises RowRejected."""
    segment_id = _text(record.get("segment_id"))
    if segment_id is None:
        raise RowRejected("missing segment_id", "segment_id is null or empty")
    if segment_id in seen_ids:
        raise RowRejected("duplicate segment_id", f"{segment_id!r} already ingested earlier in this run")
    song_id = _text(record.get("song_id"))
    if song_id is None:
        raise RowRejected("missing song_id", "song_id is null or empty")
    try:
        color = canonical_color(_text(record.get("rainbow_color")))
    except TaxonomyError as exc:
        raise RowRejected("unknown colour", str(exc)) from None
    start, end = _span(record)
    lyrics, lyrics_status = _visible(record.get("lyric_text"))
    concept, concept_status = _visible(record.get("concept"))
    return dict(
        segment_id=segment_id, song_id=song_id, color=color, **_labels(color, record),
        start_s=start, end_s=end, bpm=_number(record.get("bpm")),
        key=_key(record.get("key_signature_note"), record.get("key_signature_mode")),
        lyric_text=lyrics, concept_text=concept, has_lyrics=lyrics is not None,
        lyrics_status=lyrics_status, concept_status=concept_status,
        lyrics_digest=text_digest(lyrics), concept_digest=text_digest(concept),
    )


def _visible(value) -> tuple[str | None, str | None]:
    """(text, None), or (None, "absent: why") for text with nothing visible in it; "" is just no text."""
    text = _text(value)
    if text is None:
        return None, None
    visible = visible_text_or_none(text)
    return visible, (None if visible is not None else f"absent: {BLANK_REASON}")


# -- batch ------------------------------------------------------------------------
def binary_views(column: pa.Array | None, length: int) -> list[memoryview | None]:
    """Zero-copy views of each value of a binary column (None where null or absent)."""
    if column is None:
        return [None] * length
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    _, offsets_buf, data_buf = column.buffers()
    offset_type = np.int64 if pa.types.is_large_binary(column.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=offset_type)[column.offset : column.offset + length + 1]
    data = memoryview(data_buf) if data_buf is not None else memoryview(b"")
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    return [data[offsets[i] : offsets[i + 1]] if valid[i] else None for i in range(length)]


def _audio_column(arrays: list[np.ndarray | None]) -> pa.Array:
    """large_list<float32> built with one copy per batch, into Arrow's pool (no per-sample objects)."""
    lengths = np.array([0 if a is None else a.size for a in arrays], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    present = [pa.array(a, type=pa.float32()) for a in arrays if a is not None]  # zero-copy views
    values = pa.concat_arrays(present) if present else pa.array([], type=pa.float32())
    mask = pa.array([a is None for a in arrays], type=pa.bool_())
    return pa.LargeListArray.from_arrays(pa.array(offsets), values, mask=mask)


def _sample_rate(value) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _media_row(record: dict, audio_view, midi_view, segment: dict, dropped: Counter) -> tuple:
    """Check the blobs; sets the segment's has_/status fields; -> (segment_id, audio, rate, midi)."""
    rate = _sample_rate(record.get("audio_sample_rate"))
    audio, audio_drop = check_audio(audio_view, rate, record.get("has_audio"), record.get(AUDIO_LOAD_ERROR))
    midi, midi_drop = check_midi(midi_view, record.get("has_midi"), record.get(MIDI_LOAD_ERROR))
    for drop in (audio_drop, midi_drop):
        if drop is not None:
            dropped[drop.counter_key] += 1
    rate = rate if audio is not None else None
    segment.update(
        has_audio=audio is not None, has_midi=midi is not None,
        audio_status=audio_drop.status if audio_drop else None,
        midi_status=midi_drop.status if midi_drop else None,
        **{DIGEST_COLUMN["audio"]: audio_digest(audio, rate), DIGEST_COLUMN["midi"]: midi_digest(midi)},
    )
    return segment["segment_id"], audio, rate, midi


def _media_table(rows: list[tuple]) -> pa.Table:
    ids, audios, rates, midis = (list(column) for column in zip(*rows)) if rows else ([], [], [], [])
    columns = [pa.array(ids, pa.string()), _audio_column(audios), pa.array(rates, pa.int32()),
               pa.array(midis, pa.large_binary())]
    return pa.Table.from_arrays(columns, schema=MEDIA_SCHEMA)


def _optional_column(batch: pa.RecordBatch, name: str):
    return batch.column(name) if name in batch.schema.names else None


def _reject(record: dict, row: int, reason: str, detail: str) -> Reject:
    try:
        segment_id = _text(record.get("segment_id"))
    except (TypeError, ValueError):
        segment_id = None
    return Reject(segment_id, row, reason, detail)


def validate_batch(
    batch: pa.RecordBatch, first_row: int, seen_ids: set[str], source: str, ingested_at: datetime
) -> ValidatedBatch:
    """Validate one upstream-layout batch; accepted ids are added to `seen_ids`."""
    records = batch.select([n for n in batch.schema.names if n not in BLOB_COLUMNS]).to_pylist()
    audio_views = binary_views(_optional_column(batch, AUDIO_COLUMN), batch.num_rows)
    midi_views = binary_views(_optional_column(batch, MIDI_COLUMN), batch.num_rows)
    segments, media, rejects, dropped = [], [], [], Counter()
    for i, record in enumerate(records):
        try:
            segment = normalise_segment(record, seen_ids)
        except RowRejected as exc:
            rejects.append(_reject(record, first_row + i, exc.reason, exc.detail))
            continue
        except (TypeError, ValueError, OverflowError) as exc:  # a value of the wrong type
            rejects.append(_reject(record, first_row + i, "malformed value", f"{type(exc).__name__}: {exc}"))
            continue
        seen_ids.add(segment["segment_id"])
        media.append(_media_row(record, audio_views[i], midi_views[i], segment, dropped))
        dropped.update(f"{name}: {status[len('absent: '):]}" for name, status in
                       (("lyrics", segment["lyrics_status"]), ("concept", segment["concept_status"])) if status)
        segment["source"] = source
        segment[ROW_DIGEST] = row_digest(segment, ignore=())
        segments.append({**segment, "ingested_at": ingested_at})
    return ValidatedBatch(pa.Table.from_pylist(segments, schema=SEGMENTS_SCHEMA), _media_table(media),
                          rejects, dropped)
