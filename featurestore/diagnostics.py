"""Encoder diagnostics: how well does one feature space separate the colours?

`inspect_table` reports coverage (how many segments of each colour have a
vector), k-NN colour accuracy with neighbours drawn only from OTHER songs (so
a song's own segments, which share timbre and key, cannot make an encoder look
good), the chance levels to compare it with, and a 2-D PCA map as a PNG.
Both are computed in the space `neighbors` searches the table in (plain or
standardised cosine, `featurestore.space`), so they describe what search sees.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from featurestore.errors import SearchError
from featurestore.feature_table import PRESENT
from featurestore.schemas import SEGMENTS
from featurestore.search import feature_dim
from featurestore.space import VectorSpace, batch_matrix, table_space
from featurestore.store import Store
from featurestore.taxonomy import COLORS

# Above this many present rows the k-NN evaluation uses a seeded sample: it is O(n^2).
KNN_MAX_ROWS = 20_000
KNN_CHUNK = 1024
# Tensor features (flattened piano rolls) are randomly projected to this many
# dimensions first; Johnson-Lindenstrauss keeps cosine similarities close.
PROJECT_ABOVE_DIM = 2048
PROJECTED_DIM = 1024
MAP_MAX_POINTS = 5000
# Matrices this narrow (or short) get an exact SVD; the randomized one needs room for its oversamples.
EXACT_PCA_BELOW = 16
SEED = 0
# White points vanish on a white background and black ones hide overlaps: outline both.
OUTLINED_COLORS = ("Black", "White")


def inspect_table(store: Store, table: str, k: int = 10, out_png: Path | None = None) -> dict:
    """Coverage per colour, other-song k-NN colour accuracy vs chance, and a PCA map PNG."""
    if not isinstance(k, int) or k < 1:
        raise SearchError(f"k must be a positive integer, got {k!r}")
    dim = feature_dim(store, table)
    labels = _segment_labels(store)
    space = table_space(store, table)
    ids, matrix = _present_vectors(store, table, dim, space)
    labelled = np.array([sid in labels for sid in ids], dtype=bool)
    ids, matrix = ids[labelled], matrix[labelled]
    songs = np.array([labels[sid][0] for sid in ids], dtype=object)
    colors = np.array([labels[sid][1] for sid in ids], dtype=object)
    report = {
        "table": table,
        "dim": dim,
        "space": space.kind,
        "coverage": coverage_by_color(store, table, labels),
        # Vectors whose segment is gone from `segments` have no colour to score.
        "unlabelled_vectors": int((~labelled).sum()),
        "knn": knn_color_accuracy(matrix, colors, songs, k),
    }
    if dim > PROJECT_ABOVE_DIM:
        report["projected_to"] = PROJECTED_DIM
    if out_png is not None and len(ids) >= 2:
        report["map"] = pca_map(matrix, colors, Path(out_png), title=f"{table}  (k-NN acc {_pct(report['knn'])})")
    return report


def _segment_labels(store: Store) -> dict[str, tuple[str, str]]:
    rows = store.read(SEGMENTS, ["segment_id", "song_id", "color"])
    return {
        sid: (song, color)
        for sid, song, color in zip(*(rows.column(c).to_pylist() for c in ("segment_id", "song_id", "color")))
    }


def _present_vectors(store: Store, table: str, dim: int, space: VectorSpace) -> tuple[np.ndarray, np.ndarray]:
    projection = random_projection(dim)
    all_ids, parts = [], []
    for batch in store.scan(table, ["segment_id", "vector"], where=PRESENT, batch_size=2048):
        ids, matrix = batch_matrix(batch)
        matrix = space.transform(matrix)
        all_ids.append(ids)
        parts.append(matrix @ projection if projection is not None else matrix)
    width = PROJECTED_DIM if projection is not None else dim
    if not parts:
        return np.empty(0, dtype=object), np.empty((0, width), dtype=np.float32)
    return np.concatenate(all_ids), np.concatenate(parts)


def random_projection(dim: int) -> np.ndarray | None:
    """The seeded [dim, PROJECTED_DIM] map applied to tensor features before k-NN and maps; None below the cut."""
    if dim <= PROJECT_ABOVE_DIM:
        return None
    rng = np.random.default_rng(SEED)
    return (rng.standard_normal((dim, PROJECTED_DIM)) / math.sqrt(PROJECTED_DIM)).astype(np.float32)


def coverage_by_color(store: Store, table: str, labels: dict[str, tuple[str, str]]) -> dict:
    """Per colour: segments, those with a vector, and why the others have none."""
    rows = store.read(table, ["segment_id", "present", "status"])
    state = {sid: ("present" if present else _status_kind(status))
             for sid, present, status in zip(*(rows.column(c).to_pylist() for c in ("segment_id", "present", "status")))}
    out = {}
    for color in COLORS:
        members = [sid for sid, (_, c) in labels.items() if c == color]
        if not members:
            continue
        counts = Counter(state.get(sid, "not encoded") for sid in members)
        present = counts.pop("present", 0)
        out[color] = {
            "segments": len(members),
            "present": present,
            "present_pct": round(100.0 * present / len(members), 1),
            "missing": dict(sorted(counts.items())),
        }
    return out


def _status_kind(status: str | None) -> str:
    if not status:
        return "absent"
    return "error" if status.startswith("error") else status


# -- k-NN colour accuracy -----------------------------------------------------------
def knn_color_accuracy(matrix: np.ndarray, colors: np.ndarray, songs: np.ndarray, k: int) -> dict:
    """Majority colour of the k nearest (cosine) rows from other songs vs the row's own colour.

    `matrix` is already in the table's search space.
    """
    n = len(matrix)
    sampled = n > KNN_MAX_ROWS
    if sampled:
        keep = np.sort(np.random.default_rng(SEED).choice(n, KNN_MAX_ROWS, replace=False))
        matrix, colors, songs = matrix[keep], colors[keep], songs[keep]
    palette, color_codes = np.unique(colors.astype(str), return_inverse=True)
    _, song_codes = np.unique(songs.astype(str), return_inverse=True)
    predicted = _knn_predictions(_unit_rows(matrix), color_codes, song_codes, len(palette), k)
    evaluated = predicted >= 0
    result = {"k": k, "rows": int(n), "evaluated": int(evaluated.sum()), "sampled": sampled,
              "songs": int(song_codes.max() + 1) if len(song_codes) else 0}
    if not evaluated.any():
        return {**result, "accuracy": None, "per_color": {}, "chance_majority": None, "chance_prior": None,
                "note": "needs vectors from at least two songs"}
    hits = predicted[evaluated] == color_codes[evaluated]
    truth = color_codes[evaluated]
    shares = np.bincount(truth, minlength=len(palette)) / len(truth)
    per_color = {str(palette[c]): round(float(hits[truth == c].mean()), 4) for c in np.unique(truth)}
    return {**result, "accuracy": round(float(hits.mean()), 4), "per_color": per_color,
            "chance_majority": round(float(shares.max()), 4), "chance_prior": round(float((shares**2).sum()), 4)}


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _knn_predictions(unit, color_codes, song_codes, n_colors, k) -> np.ndarray:
    """Predicted colour code per row; -1 where the row has no other-song rows."""
    n = len(unit)
    predicted = np.full(n, -1, dtype=np.int64)
    for start in range(0, n, KNN_CHUNK):
        stop = min(n, start + KNN_CHUNK)
        sims = unit[start:stop] @ unit.T
        sims[song_codes[start:stop, None] == song_codes[None, :]] = -np.inf
        take = min(k, n - 1)
        if take < 1:
            break
        nearest = np.argpartition(-sims, take - 1, axis=1)[:, :take]
        near_sims = np.take_along_axis(sims, nearest, axis=1)
        valid = np.isfinite(near_sims)
        rows = np.repeat(np.arange(stop - start), take).reshape(-1, take)
        votes = np.zeros((stop - start, n_colors))
        np.add.at(votes, (rows[valid], color_codes[nearest][valid]), 1.0)
        # Ties go to the colour whose neighbours are closer; the bonus is < 0.5 so it never beats a vote.
        np.add.at(votes, (rows[valid], color_codes[nearest][valid]), near_sims[valid] / (4.0 * take))
        chosen = votes.argmax(axis=1)
        predicted[start:stop] = np.where(valid.any(axis=1), chosen, -1)
    return predicted


def _pct(knn: dict) -> str:
    return "n/a" if knn.get("accuracy") is None else f"{100 * knn['accuracy']:.1f}% vs chance {100 * knn['chance_majority']:.1f}%"


# -- 2-D map -----------------------------------------------------------------------------
def pca_coords(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[n, 2] coordinates on the first two principal components of the rows (as unit vectors), and their
    shares of the variance.

    Only the two components drawn are computed (seeded randomized SVD with power iterations):
    a full SVD of 3000 x 512 took 15 s on a loaded 2-core machine, this 0.2-0.8 s (BENCHMARKS.md).
    """
    points = _unit_rows(matrix)
    centred = points - points.mean(axis=0)
    total = max(float((centred.astype(np.float64) ** 2).sum()), 1e-12)
    if min(centred.shape) <= EXACT_PCA_BELOW:
        _, singular, components = np.linalg.svd(centred, full_matrices=False)
        singular, components = singular[:2], components[:2]
    else:
        from sklearn.utils.extmath import randomized_svd

        _, singular, components = randomized_svd(centred, 2, n_oversamples=20, n_iter=10, random_state=SEED)
    coords = centred @ components.T
    coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))  # a 1-d space still gets a map
    return coords, singular**2 / total


def pca_map(matrix: np.ndarray, colors: np.ndarray, out_png: Path, title: str) -> dict:
    """Scatter of the first two principal components, one colour per label; returns the path and variance."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(SEED)
    pick = np.sort(rng.choice(len(matrix), min(len(matrix), MAP_MAX_POINTS), replace=False))
    labels = colors[pick]
    coords, variance = pca_coords(matrix[pick])
    fig = Figure(figsize=(7.5, 6.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for color in [c for c in COLORS if c in set(labels)]:
        mask = labels == color
        edge = "0.35" if color in OUTLINED_COLORS else "none"
        ax.scatter(coords[mask, 0], coords[mask, 1], s=14, c=color.lower(), edgecolors=edge, linewidths=0.6,
                   alpha=0.75, label=f"{color} ({int(mask.sum())})")
    ax.set_xlabel(f"PC1 ({100 * variance[0]:.1f}% var)")
    ax.set_ylabel(f"PC2 ({100 * variance[1]:.1f}% var)" if len(variance) > 1 else "PC2")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, markerscale=1.3, loc="best")
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110, bbox_inches="tight")
    return {"png": str(out_png), "points": int(len(pick)),
            "explained_variance": [round(float(v), 4) for v in variance[:2]]}
