"""Training arrays from a join: inputs, masks, soft targets, and a song-level split.

Everything lives in memory as numpy. Tensor inputs (piano rolls) are held as
float16: 12k segments x 128 x 256 is ~800 MB that way, and the values (velocities
scaled to [0, 1]) lose nothing that matters; batches are converted to float32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from featurestore.join import JoinResult, input_arrays
from featurestore.schemas import input_modality
from featurestore.taxonomy import (
    COLORS,
    DIMENSIONS,
    TaxonomyError,
    color_index,
    parse_modes,
    single_mode_index,
    soft_target,
)
from fusion.errors import ModelError


@dataclass
class FusionData:
    """Row-aligned arrays for N segments."""

    segment_ids: np.ndarray  # [N] str
    song_ids: np.ndarray  # [N] str
    colors: np.ndarray  # [N] str
    values: dict[str, np.ndarray]  # input -> [N, *shape] float32 (vectors) / float16 (tensors)
    masks: dict[str, np.ndarray]  # input -> [N] bool
    soft_targets: dict[str, np.ndarray]  # dimension -> [N, 3] float32
    mode_targets: dict[str, np.ndarray]  # dimension -> [N] int, -1 where no single mode
    color_targets: np.ndarray  # [N] int
    has_lyrics: np.ndarray | None = None  # [N] bool: the segment has lyric text (segments.has_lyrics)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (segment_id, reason)
    # input -> the modality each of its tables reads, in fill order (`midi` from pianoroll then an audio
    # transcription: ("midi", "audio")); an input not listed reads the modality its name says.
    reads: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.segment_ids)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.values)

    def reads_of(self, name: str) -> tuple[str, ...]:
        """The modalities input `name`'s tables read, in fill order."""
        return self.reads.get(name) or (input_modality(name),)


def build_dataset(result: JoinResult) -> FusionData:
    """Arrays for every segment with valid labels; others are skipped with a reason.

    Rows whose feature values are non-finite keep their labels but have that
    input masked; they are listed in `skipped` with the reason too.
    """
    table = result.table
    segment_ids = np.asarray(table.column("segment_id").to_pylist(), dtype=object)
    keep, labels, skipped = _labels(table, segment_ids)
    rows = slice(None) if keep.all() else keep  # a boolean index would copy ~800 MB of piano rolls
    values, masks = {}, {}
    for name, source in result.sources.items():
        arrays = input_arrays(result, name, np.float16 if source.kind == "tensor" else np.float32)
        skipped += [(sid, f"non-finite {name} values: input masked") for sid in arrays.invalid_segments]
        values[name], masks[name] = arrays.values[rows], arrays.mask[rows]
    columns = {c: np.asarray(table.column(c).to_pylist(), dtype=object)[keep] for c in ("song_id", "color")}
    return FusionData(
        segment_ids=segment_ids[keep], song_ids=columns["song_id"], colors=labels.pop("color_name"),
        values=values, masks=masks, soft_targets=labels["soft"], mode_targets=labels["single"],
        color_targets=labels["color"], skipped=skipped,
        reads={name: tuple(t.modality for t in source.tables) for name, source in result.sources.items()},
        has_lyrics=np.asarray(table.column("has_lyrics").to_pylist(), dtype=bool)[keep]
        if "has_lyrics" in table.column_names else None,
    )


def _labels(table, segment_ids: np.ndarray):
    """Targets from the stored label strings, parsed once per distinct label."""
    columns = [table.column(c).to_pylist() for c in ("color", *DIMENSIONS)]
    keys = list(zip(*columns))
    parsed = {key: _parse_label(key) for key in set(keys)}
    keep = np.asarray([not isinstance(parsed[key], str) for key in keys], dtype=bool)
    skipped = [(sid, parsed[key]) for sid, key, ok in zip(segment_ids, keys, keep) if not ok]
    rows = [parsed[key] for key, ok in zip(keys, keep) if ok]
    labels = {
        "soft": {
            d: np.stack([r["soft"][d] for r in rows]) if rows else np.zeros((0, 3), np.float32) for d in DIMENSIONS
        },
        "single": {d: np.asarray([r["single"][d] for r in rows], dtype=np.int64) for d in DIMENSIONS},
        "color": np.asarray([r["color"] for r in rows], dtype=np.int64),
        "color_name": np.asarray([COLORS[r["color"]] for r in rows], dtype=object),
    }
    return keep, labels, skipped


def _parse_label(key: tuple) -> dict | str:
    """Parsed targets of one (color, temporal, spatial, ontological) label, or the reason it is bad."""
    color, *modes = key
    try:
        cidx = color_index(color)
        parsed = {d: parse_modes(d, m) for d, m in zip(DIMENSIONS, modes)}
    except TaxonomyError as exc:
        return f"bad label: {exc}"
    return {
        "soft": {d: soft_target(d, parsed[d]) for d in DIMENSIONS},
        "single": {d: single_mode_index(d, parsed[d]) for d in DIMENSIONS},
        "color": cidx,
    }


def split_by_song(
    song_ids: np.ndarray, colors: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train_index, val_index) with no song on both sides, seeded, stratified by colour.

    Each colour's songs are shuffled and round(val_fraction * n) of them go to
    validation, at least one when the colour has two or more songs and never all
    of them. A song's colour is its most frequent segment colour.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ModelError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    song_ids = np.asarray(song_ids, dtype=object)
    songs_by_color: dict[str, list[str]] = {}
    for song, color in _song_colors(song_ids, np.asarray(colors, dtype=object)).items():
        songs_by_color.setdefault(color, []).append(song)
    rng = np.random.default_rng(seed)
    val_songs: set[str] = set()
    for color in sorted(songs_by_color):
        songs = sorted(songs_by_color[color])
        if len(songs) < 2:
            continue
        n_val = min(max(1, round(val_fraction * len(songs))), len(songs) - 1)
        val_songs.update(rng.permutation(songs)[:n_val].tolist())
    is_val = np.isin(song_ids, list(val_songs))
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def song_folds(song_ids: np.ndarray, colors: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_index, val_index) per fold: song-grouped K-fold, stratified by colour, seeded.

    Every song is in exactly one fold's validation rows. Each colour's songs are
    shuffled and dealt to the folds in turn, continuing where the previous colour
    stopped, so folds differ by at most one song per colour and in total.
    """
    song_ids = np.asarray(song_ids, dtype=object)
    song_colors = _song_colors(song_ids, np.asarray(colors, dtype=object))
    if not 2 <= folds <= len(song_colors):
        raise ModelError(f"cannot make {folds} song folds of {len(song_colors)} songs; use --folds between 2 and "
                         f"the number of songs ({len(song_colors)}), or --folds 1 for one held-out split")
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    dealt = 0
    for color in sorted(set(song_colors.values())):
        for song in rng.permutation(sorted(s for s, c in song_colors.items() if c == color)).tolist():
            fold_of[song] = dealt % folds
            dealt += 1
    assigned = np.asarray([fold_of[song] for song in song_ids], dtype=np.int64)
    return [(np.flatnonzero(assigned != k), np.flatnonzero(assigned == k)) for k in range(folds)]


def _song_colors(song_ids: np.ndarray, colors: np.ndarray) -> dict[str, str]:
    counts: dict[str, dict[str, int]] = {}
    for song, color in zip(song_ids, colors):
        per_song = counts.setdefault(song, {})
        per_song[color] = per_song.get(color, 0) + 1
    return {song: max(sorted(c), key=c.get) for song, c in counts.items()}


def val_index_for_songs(song_ids: np.ndarray, val_songs: list[str]) -> np.ndarray:
    """Rows of the recorded validation songs (re-creating a stored split)."""
    return np.flatnonzero(np.isin(np.asarray(song_ids, dtype=object), list(val_songs)))
