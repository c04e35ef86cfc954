"""The geometry a feature table is searched in: plain cosine, or cosine after z-scoring.

Learned embeddings (CLAP, MiniLM, fused runs) are unit-norm and cosine suits
them. The weight-free encoders store raw statistics whose scales differ by
orders of magnitude (log-mel in dB near -40, MFCCs in the hundreds, fractions
near 0.1): cosine on those only sees the few largest features, and every
vector points almost the same way. Such tables are searched after z-scoring
each feature with the mean and std of the table's own present vectors, so each
feature gets an equal say. The transform is affine per feature, so an ANN
index over the stored (raw) vectors would rank by another metric: standardised
tables are always searched exactly.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.feature_table import PRESENT
from featurestore.store import Store

COSINE = "cosine"
STANDARDISED = "standardised cosine"
# A table counts as unit-norm when its sampled vectors' median |norm - 1| is below this.
UNIT_NORM_TOLERANCE = 1e-3
NORM_SAMPLE_ROWS = 1024
# A constant feature has std 0: the floor keeps it at z = 0 instead of dividing by zero.
STD_FLOOR = 1e-6
STATS_BATCH_ROWS = 8192
CACHED_SPACES = 64


@dataclass(frozen=True)
class VectorSpace:
    """How to map a table's stored vectors (and queries) into the space cosine is taken in."""

    kind: str
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    rows: int = 0

    @property
    def standardised(self) -> bool:
        return self.kind == STANDARDISED

    def transform(self, matrix: np.ndarray) -> np.ndarray:
        """Rows (or one vector) in this space, float32; identity for plain cosine."""
        if not self.standardised:
            return matrix
        return ((np.asarray(matrix, dtype=np.float64) - self.mean) / self.scale).astype(np.float32)


COSINE_SPACE = VectorSpace(COSINE)
_cache: OrderedDict[tuple[str, str, int], VectorSpace] = OrderedDict()
_cache_lock = threading.Lock()


def table_space(store: Store, table: str, dataset=None) -> VectorSpace:
    """The space `table` is searched in, from its present vectors; cached per Lance version.

    `dataset`: the table's Lance dataset when the caller holds one (a snapshot); else the latest.
    """
    dataset = dataset if dataset is not None else store.dataset(table)
    key = (store.uri, table, int(dataset.version))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    space = _measure_space(dataset)  # one dataset object reads one version: statistics never mix versions
    with _cache_lock:
        _cache[key] = space
        while len(_cache) > CACHED_SPACES:
            _cache.popitem(last=False)
    return space


def _measure_space(dataset) -> VectorSpace:
    sample = _first_vectors(dataset, NORM_SAMPLE_ROWS)
    if is_unit_norm(sample):
        return COSINE_SPACE
    return _standardised_space(dataset)


def is_unit_norm(matrix: np.ndarray) -> bool:
    """True for an empty sample too: with no vectors there is nothing to standardise."""
    if len(matrix) == 0:
        return True
    norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
    return float(np.median(np.abs(norms - 1.0))) < UNIT_NORM_TOLERANCE


def _first_vectors(dataset, rows: int) -> np.ndarray:
    for batch in dataset.to_batches(columns=["vector"], filter=PRESENT, batch_size=rows):
        matrix = vector_rows(batch.column("vector"))
        if len(matrix):
            return matrix
    return np.empty((0, 0), dtype=np.float32)


def _standardised_space(dataset) -> VectorSpace:
    # Streamed sums keep memory at one batch however large the table is.
    total = squares = None
    count = 0
    for batch in dataset.to_batches(columns=["vector"], filter=PRESENT, batch_size=STATS_BATCH_ROWS):
        matrix = vector_rows(batch.column("vector"))
        if not len(matrix):
            continue
        values = matrix.astype(np.float64)
        total = values.sum(axis=0) if total is None else total + values.sum(axis=0)
        squares = (values**2).sum(axis=0) if squares is None else squares + (values**2).sum(axis=0)
        count += len(values)
    if count == 0:
        return COSINE_SPACE
    return _from_moments(total, squares, count)


def _from_moments(total: np.ndarray, squares: np.ndarray, count: int) -> VectorSpace:
    mean = total / count
    variance = np.maximum(squares / count - mean**2, 0.0)
    return VectorSpace(STANDARDISED, mean, np.maximum(np.sqrt(variance), STD_FLOOR), count)


def batch_matrix(batch: pa.RecordBatch | pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(segment ids, [n, dim] float32 matrix) of the rows whose vector is not null."""
    if batch.column("vector").null_count:
        batch = batch.filter(pc.is_valid(batch.column("vector")))
    return np.asarray(batch.column("segment_id").to_pylist(), dtype=object), vector_rows(batch.column("vector"))


def vector_rows(vectors: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """[n, dim] float32 matrix of the non-null entries of a fixed-size-list vector column."""
    if isinstance(vectors, pa.ChunkedArray):
        vectors = vectors.combine_chunks()
    if vectors.null_count:  # (a filter copies every vector: skipped when there is nothing to drop)
        vectors = vectors.filter(pc.is_valid(vectors))
    return np.asarray(vectors.flatten(), dtype=np.float32).reshape(-1, vectors.type.list_size)
