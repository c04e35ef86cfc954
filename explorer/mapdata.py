"""The points of a feature-space map: a seeded sample, projected to 2-D, with each segment's metadata.

Never the whole table: `featurestore.sample` reads only the sampled rows'
vectors. Points are drawn in the space the table is searched in (plain or
standardised cosine, `featurestore.space`), so the map and `neighbors` agree.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from featurestore.diagnostics import SEED, pca_coords, random_projection
from featurestore.errors import SearchError
from featurestore.schemas import SEGMENTS
from featurestore.search import candidate_segment_ids, feature_dim
from featurestore.sample import sample_vectors
from featurestore.space import VectorSpace, table_space
from featurestore.store import Store, sql_in

METHODS = ("pca", "tsne", "umap")
AVAILABILITY = ("audio", "midi", "lyrics")
POINT_METADATA = ["segment_id", "song_id", "color", "start_s", "end_s", "bpm", "key",
                  "has_audio", "has_midi", "has_lyrics", "audio_status", "midi_status"]
DEFAULT_POINTS = 3000
MAX_POINTS = 20_000
_PROJECT_ROWS = 512
CACHED_MAPS = 16


@dataclass(frozen=True)
class MapQuery:
    table: str
    colors: tuple[str, ...] = ()
    songs: tuple[str, ...] = ()
    require: tuple[str, ...] = ()  # modalities a segment must have, of AVAILABILITY
    method: str = "pca"
    points: int = DEFAULT_POINTS
    seed: int = SEED

    def __post_init__(self):
        if self.method not in METHODS:
            raise SearchError(f"unknown map method {self.method!r}; choose one of {', '.join(METHODS)}")
        if not 2 <= self.points <= MAX_POINTS:
            raise SearchError(f"points must be between 2 and {MAX_POINTS}, got {self.points}")
        unknown = sorted(set(self.require) - set(AVAILABILITY))
        if unknown:
            raise SearchError(f"unknown modality filter {unknown}; choose from {', '.join(AVAILABILITY)}")


def availability_where(require: tuple[str, ...]) -> str | None:
    """SQL over `segments` keeping segments that have every required modality."""
    return " AND ".join(f"has_{name} = true" for name in require) or None


_cache: OrderedDict[tuple, dict] = OrderedDict()
_cache_lock = threading.Lock()


def map_points(store: Store, query: MapQuery) -> dict:
    """{"points": [...], "eligible", "shown", "method", "explained_variance"}; cached per table version."""
    feature_dim(store, query.table)  # refuses system tables and bad names with the search's own messages
    features = store.dataset(query.table)  # one snapshot: the sample and the space read one version
    key = (store.uri, query, int(features.version), int(store.dataset(SEGMENTS).version))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    result = _compute_map(store, features, query)
    with _cache_lock:
        _cache[key] = result
        while len(_cache) > CACHED_MAPS:
            _cache.popitem(last=False)
    return result


def _compute_map(store: Store, features, query: MapQuery) -> dict:
    candidates = candidate_segment_ids(store, query.colors, query.songs, availability_where(query.require))
    sample = sample_vectors(features, query.points, query.seed, candidates)
    result = {"table": query.table, "method": query.method, "eligible": sample.eligible,
              "shown": int(len(sample.segment_ids)), "explained_variance": None, "points": []}
    if len(sample.segment_ids) < 2:
        return result
    matrix = _in_map_space(table_space(store, query.table, features), sample.matrix)
    # One BLAS thread: on matrices this small, threads cost more in hand-offs than they save (3000 x 512
    # PCA: 0.28 s vs 1.3-1.9 s with 2 threads on a loaded machine), and requests already run side by side.
    with threadpool_limits(1):
        coords, variance = project_2d(matrix, query.method, query.seed)
    if variance is not None:
        result["explained_variance"] = [round(float(v), 4) for v in variance[:2]]
    meta = segment_metadata(store, sample.segment_ids.tolist())
    result["points"] = [{**meta.get(sid, {"segment_id": sid}), "x": round(float(x), 5), "y": round(float(y), 5)}
                        for sid, (x, y) in zip(sample.segment_ids, coords)]
    return result


def _in_map_space(space: VectorSpace, matrix: np.ndarray) -> np.ndarray:
    projection = random_projection(matrix.shape[1])
    if projection is None:
        return space.transform(matrix.astype(np.float32, copy=False))
    # Tensor features (float16 piano rolls): projected in slices, so the sample is never float32 at once.
    parts = [space.transform(matrix[i : i + _PROJECT_ROWS].astype(np.float32)) @ projection
             for i in range(0, len(matrix), _PROJECT_ROWS)]
    return np.concatenate(parts)


def project_2d(matrix: np.ndarray, method: str, seed: int = SEED) -> tuple[np.ndarray, np.ndarray | None]:
    """[n, 2] coordinates; PCA also returns each component's share of the variance."""
    if method == "pca":
        return pca_coords(matrix)
    unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(unit) - 1) / 3)))
        return TSNE(2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed).fit_transform(unit), None
    try:
        import umap
    except ImportError:
        raise SearchError("the UMAP map needs the umap-learn package (pip install umap-learn); "
                          "PCA and t-SNE work without it") from None
    neighbours = int(min(15, len(unit) - 1))
    return umap.UMAP(n_neighbors=neighbours, metric="cosine", random_state=seed).fit_transform(unit), None


def segment_metadata(store: Store, segment_ids: list[str]) -> dict[str, dict]:
    """Map-point metadata of each segment found in `segments`, by id."""
    if not segment_ids:
        return {}
    rows = store.read(SEGMENTS, POINT_METADATA, where=sql_in("segment_id", segment_ids)).to_pylist()
    return {row["segment_id"]: row for row in rows}
