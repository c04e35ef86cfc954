"""The synthetic corpus: songs -> segments -> a parquet in the upstream layout.

One row per segment, written one row group per song so memory stays bounded by
the largest song. Every song draws from its own seeded generators (keyed by
seed and song index), so song k is the same whatever the corpus size.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from featurestore.taxonomy import color_modes
from featurestore.validate import LABEL_COLUMNS
from featurestore.validate import UPSTREAM_SCHEMA as _INGEST_SCHEMA
from synth.audio import RELEASE_SECONDS, build_instrument, render
from synth.errors import SynthError
from synth.midi import midi_bytes
from synth.music import compose
from synth.styles import ALBUM_COLORS, COVERAGE, sample_song_params
from synth.text import concept_text, lyric_text

# The upstream layout is ingest's contract (featurestore.validate); the corpus adds
# only `duration_seconds`, which upstream files carry (ingest reads start/end instead).
UPSTREAM_SCHEMA = _INGEST_SCHEMA.insert(
    _INGEST_SCHEMA.get_field_index("end_seconds") + 1, pa.field("duration_seconds", pa.float64())
)
# Segment length = min + (max - min) * x, x ~ Beta(a, b) mostly (short: 44.1 kHz
# float32 is ~176 kB/s) and uniform for a few, so some segments reach the maximum.
LENGTH_BETA = (0.9, 7.0)
LONG_SEGMENT_PROB = 0.05
PARQUET_COMPRESSION = "zstd"


@dataclass(frozen=True)
class SynthConfig:
    songs: int = 40
    seed: int = 0
    segments_per_song: tuple[int, int] = (6, 12)
    min_seconds: float = 5.0
    max_seconds: float = 30.0
    sample_rate: int = 44100

    def __post_init__(self):
        low, high = self.segments_per_song
        problems = []
        if self.songs < 1:
            problems.append(f"songs must be at least 1 (got {self.songs})")
        if self.seed < 0:
            problems.append(f"seed must be 0 or more (got {self.seed})")
        if not 1 <= low <= high:
            problems.append(f"segments_per_song must be (low, high) with 1 <= low <= high (got {self.segments_per_song})")
        if not 0 < self.min_seconds <= self.max_seconds:
            problems.append(
                f"need 0 < min_seconds <= max_seconds (got {self.min_seconds} and {self.max_seconds})"
            )
        if not 8000 <= self.sample_rate <= 192000:
            problems.append(f"sample_rate must be within 8000..192000 Hz (got {self.sample_rate})")
        if problems:
            raise SynthError("bad synth settings: " + "; ".join(problems))


@dataclass(frozen=True)
class ColorCounts:
    songs: int = 0
    segments: int = 0
    audio: int = 0
    midi: int = 0
    lyrics: int = 0

    def coverage(self, modality: str) -> float:
        return getattr(self, modality) / self.segments if self.segments else 0.0

    def plus(self, other: "ColorCounts") -> "ColorCounts":
        return ColorCounts(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values())))


@dataclass(frozen=True)
class SynthSummary:
    out: str
    songs: int
    segments: int
    per_color: dict[str, ColorCounts]
    failures: tuple[tuple[str, str], ...]  # (song_id, reason) of songs that could not be made
    bytes: int
    seconds: float
    audio_seconds: float
    config: SynthConfig = field(default_factory=SynthConfig)

    @property
    def total(self) -> ColorCounts:
        total = ColorCounts()
        for counts in self.per_color.values():
            total = total.plus(counts)
        return total

    def to_dict(self) -> dict:
        data = asdict(self)
        data["coverage"] = {m: self.total.coverage(m) for m in ("audio", "midi", "lyrics")}
        return data


def song_color(seed: int, index: int) -> str:
    """Colours in a seeded order, cycled: spread evenly, independent of corpus size."""
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,))).permutation(len(ALBUM_COLORS))
    return ALBUM_COLORS[int(order[index % len(ALBUM_COLORS)])]


def song_id(seed: int, index: int) -> str:
    return f"syn{seed}-{index:04d}"


def _song_streams(seed: int, index: int) -> dict[str, np.random.Generator]:
    """Separate generators per concern, so e.g. coverage draws never shift the music."""
    names = ("layout", "music", "audio", "text", "coverage")
    children = np.random.SeedSequence(seed, spawn_key=(0, index)).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children)}


def _segment_bounds(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) consecutive [start, end) windows in seconds, rounded to milliseconds."""
    low, high = config.segments_per_song
    count = int(rng.integers(low, high + 1))
    span = config.max_seconds - config.min_seconds
    fraction = np.where(rng.random(count) < LONG_SEGMENT_PROB, rng.random(count), rng.beta(*LENGTH_BETA, size=count))
    lengths = np.round(config.min_seconds + span * fraction, 3)
    lengths = np.clip(lengths, config.min_seconds, config.max_seconds)
    offset = round(float(rng.uniform(0.0, 2.0)), 3)
    ends = np.round(offset + np.cumsum(lengths), 3)
    starts = np.concatenate([[offset], ends[:-1]])
    return np.stack([starts, ends], axis=1)


def _song_rows(config: SynthConfig, index: int) -> list[dict]:
    streams = _song_streams(config.seed, index)
    color = song_color(config.seed, index)
    params = sample_song_params(color, streams["music"])
    bounds = _segment_bounds(config, streams["layout"])
    notes = compose(params, float(bounds[-1, 1]), streams["music"])
    instrument = build_instrument(params.timbre, config.sample_rate, streams["audio"])
    coverage = COVERAGE[color]
    labels = {column: color_modes(color).label_string(dim) for dim, column in LABEL_COLUMNS.items()}
    concept = concept_text(color, streams["text"])
    sid = song_id(config.seed, index)
    rows = []
    for k, (start, end) in enumerate(bounds):
        has_midi = bool(streams["coverage"].random() < coverage.midi)
        has_audio = not has_midi or bool(streams["coverage"].random() < coverage.audio_given_midi())
        sung = bool(streams["coverage"].random() < coverage.lyrics)
        duration = round(float(end - start), 3)  # exact to the millisecond grid
        audio = None
        if has_audio:
            wave = render(notes.around(start, end, RELEASE_SECONDS), duration, instrument, streams["audio"])
            audio = wave.astype("<f4").tobytes()
        rows.append(
            dict(
                segment_id=f"{sid}_seg{k:03d}", song_id=sid, rainbow_color=color, **labels,
                start_seconds=float(start), end_seconds=float(end), duration_seconds=duration,
                lyric_text=lyric_text(color, streams["text"]) if sung else "", concept=concept,
                audio_waveform=audio, audio_sample_rate=config.sample_rate,
                midi_binary=midi_bytes(notes.window(start, end), params) if has_midi else None,
                has_audio=has_audio, has_midi=has_midi, bpm=params.bpm,
                key_signature_note=params.key_note, key_signature_mode=params.key_mode,
            )
        )
    return rows


def _count(rows: list[dict]) -> ColorCounts:
    return ColorCounts(
        songs=1,
        segments=len(rows),
        audio=sum(r["has_audio"] for r in rows),
        midi=sum(r["has_midi"] for r in rows),
        lyrics=sum(bool(r["lyric_text"]) for r in rows),
    )


@dataclass
class _Tally:
    per_color: dict[str, ColorCounts]
    failures: list[tuple[str, str]]
    audio_seconds: float = 0.0

    def add(self, rows: list[dict]) -> None:
        color = rows[0]["rainbow_color"]
        self.per_color[color] = self.per_color[color].plus(_count(rows))
        self.audio_seconds += sum(r["duration_seconds"] for r in rows if r["has_audio"])


def _write_songs(config: SynthConfig, writer: pq.ParquetWriter, progress) -> _Tally:
    tally = _Tally(per_color={color: ColorCounts() for color in ALBUM_COLORS}, failures=[])
    for index in range(config.songs):
        try:
            rows = _song_rows(config, index)
        except Exception as exc:  # one bad song must not sink the corpus; it is reported
            tally.failures.append((song_id(config.seed, index), f"{type(exc).__name__}: {exc}"))
            rows = []
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=UPSTREAM_SCHEMA))
            tally.add(rows)
        if progress is not None:
            progress(index + 1, config.songs)
    return tally


def write_corpus(config: SynthConfig, out: Path, progress: Callable[[int, int], None] | None = None) -> SynthSummary:
    """Generate `config.songs` songs and write them to `out` (parquet, one row group per song).

    The file appears only when complete (written beside it, then renamed). A song
    that cannot be generated is skipped and reported in `failures`.
    `progress(done, total)` is called after each song.
    """
    began = time.perf_counter()
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(partial, UPSTREAM_SCHEMA, compression=PARQUET_COMPRESSION) as writer:
            tally = _write_songs(config, writer, progress)
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise SynthError(f"cannot write the corpus to {out}: {exc}; choose a writable --out path") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return SynthSummary(
        out=str(out),
        songs=config.songs - len(tally.failures),
        segments=sum(c.segments for c in tally.per_color.values()),
        per_color=tally.per_color,
        failures=tuple(tally.failures),
        bytes=out.stat().st_size,
        seconds=time.perf_counter() - began,
        audio_seconds=tally.audio_seconds,
        config=config,
    )
