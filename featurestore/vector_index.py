"""Indexes for neighbour search: an ANN index on `vector`, scalar indexes on filter columns.

The ANN index is trained with the same metric every query uses (cosine), so
index and query never disagree. Small tables stay exact: below a few thousand
vectors a brute-force scan is already fast and an index only costs recall.
Tables of raw statistics stay exact too: they are searched in a standardised
space (`featurestore.space`) that an index over the stored vectors cannot rank by.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

from featurestore.errors import SearchError
from featurestore.feature_table import PRESENT
from featurestore.schemas import SEGMENTS, SYSTEM_TABLES, FeatureTableName, vector_shape
from featurestore.space import table_space
from featurestore.store import Store

METRIC = "cosine"
VECTOR_COLUMN = "vector"
# PQ trains 256 centroids per sub-vector (8-bit codes): fewer vectors cannot train it.
PQ_MIN_ROWS = 256
# Low-cardinality columns get a bitmap, the rest a B-tree.
FEATURE_SCALAR_INDEXES = {"segment_id": "BTree", "present": "Bitmap"}
SEGMENT_SCALAR_INDEXES = {"segment_id": "BTree", "color": "Bitmap", "song_id": "Bitmap"}


@dataclass(frozen=True)
class IndexSettings:
    """How `build_index` partitions and compresses; defaults measured in BENCHMARKS.md."""

    # Tables with fewer present vectors stay exact: a scan of them takes tens of milliseconds.
    min_rows: int = 10_000
    # Vectors per IVF partition: rows / this = number of partitions.
    rows_per_partition: int = 4096
    # Dimensions per PQ sub-vector (8 keeps codes precise enough to refine from).
    dims_per_sub_vector: int = 8
    # k-means iterations for IVF and PQ: 10 builds ~4x faster than lance's 50 at equal recall.
    kmeans_iterations: int = 10
    lock_timeout_s: float = 30.0


DEFAULT_INDEX_SETTINGS = IndexSettings()


def build_index(store: Store, table: str, settings: IndexSettings = DEFAULT_INDEX_SETTINGS) -> dict:
    """Build scalar indexes for filters and, on a large enough unit-norm table, a cosine ANN index.

    Returns a summary: table, space, kind (IVF_PQ or exact), rows, seconds,
    the index parameters and the scalar indexes made.
    """
    if table in SYSTEM_TABLES:
        raise SearchError(f"{table!r} is a system table; index a feature table such as audio.clap.v1")
    FeatureTableName.parse(table)
    started = time.perf_counter()
    with store.writer(table, timeout_s=settings.lock_timeout_s):
        scalar = _scalar_indexes(store, table, FEATURE_SCALAR_INDEXES)
        rows = store.count(table, PRESENT)
        space = table_space(store, table)
        summary = {"space": space.kind, **_vector_index(store, table, rows, space.standardised, settings)}
    if store.has_table(SEGMENTS):
        with store.writer(SEGMENTS, timeout_s=settings.lock_timeout_s):
            scalar += _scalar_indexes(store, SEGMENTS, SEGMENT_SCALAR_INDEXES)
    return {"table": table, "rows": rows, **summary, "scalar_indexes": scalar,
            "seconds": round(time.perf_counter() - started, 3)}


def _vector_index(store: Store, table: str, rows: int, standardised: bool, settings: IndexSettings) -> dict:
    threshold = max(settings.min_rows, PQ_MIN_ROWS)
    tbl = store.table(table)
    if standardised or rows < threshold:
        stale = _vector_index_name(tbl)
        if stale:  # an index from when the table was larger (or unit-norm) would only cost recall now
            tbl.drop_index(stale)
        if standardised:
            return {"kind": "exact", "note": "vectors are not unit-norm: searched exactly in standardised space"}
        return {"kind": "exact", "note": f"{rows} vectors < {threshold}: exact search is fast and exact"}
    dim = math.prod(vector_shape(tbl.schema))
    params = {
        "num_partitions": max(1, rows // settings.rows_per_partition),
        "num_sub_vectors": sub_vector_count(dim, settings.dims_per_sub_vector),
    }
    from lancedb.index import IvfPq  # only index builds pay for the lancedb import

    config = IvfPq(distance_type=METRIC, max_iterations=settings.kmeans_iterations, **params)
    tbl.create_index(VECTOR_COLUMN, config=config, replace=True)
    return {"kind": "IVF_PQ", "metric": METRIC, **params}


def sub_vector_count(dim: int, dims_per_sub_vector: int) -> int:
    """The divisor of `dim` giving sub-vectors closest to `dims_per_sub_vector` dims (PQ needs a divisor)."""
    divisors = [d for d in range(1, dim + 1) if dim % d == 0]
    return min(divisors, key=lambda d: (abs(dim / d - dims_per_sub_vector), -d))


def _scalar_indexes(store: Store, table: str, wanted: dict) -> list[str]:
    import lancedb.index

    tbl = store.table(table)
    made = []
    for column, kind in wanted.items():
        if column in tbl.schema.names:
            tbl.create_index(column, config=getattr(lancedb.index, kind)(), replace=True)
            made.append(f"{table}.{column} ({kind})")
    return made


def _vector_index_name(tbl) -> str | None:
    for index in tbl.list_indices():
        if VECTOR_COLUMN in index.columns:
            return index.name
    return None


# -- querying the index (Lance dataset, no lancedb) ------------------------------------
@dataclass(frozen=True)
class AnnIndex:
    """A cosine IVF index on `vector`, as a query needs to know it."""

    name: str
    partitions: int
    sub_vectors: int  # PQ codes per row: an index query's scan costs this per probed row


def cosine_ann_index(dataset) -> AnnIndex | None:
    """The dataset's ANN index on `vector` when it ranks by cosine, else None."""
    # Only the partition count and metric are needed: leave the centroids out (lance warns when they are
    # left to its changing default, and they cost memory).
    os.environ.setdefault("LANCE_INCLUDE_VECTOR_CENTROIDS", "false")
    for index in dataset.list_indices():
        if VECTOR_COLUMN in index["fields"] and str(index["type"]).upper().startswith("IVF"):
            stats = dataset.stats.index_stats(index["name"])
            part = (stats.get("indices") or stats.get("segments") or [{}])[0]
            if str(part.get("metric_type", "")).lower() != METRIC:
                return None
            sub_vectors = int((part.get("sub_index") or {}).get("num_sub_vectors", 1))
            return AnnIndex(index["name"], int(part.get("num_partitions", 1)), sub_vectors)
    return None


def ann_query(
    dataset, queries: np.ndarray, limit: int, nprobes: int, refine_factor: int, allow: bytes | None = None
) -> list[list[tuple[str, float]]]:
    """Per query row: up to `limit` (segment_id, cosine distance) from the IVF index, nearest first.

    `allow` (a `featurestore.rowmask.allowlist`) masks rows before ranking, so a
    filter costs a bitmap test per probed row. refine_factor re-ranks on the full
    vectors, so the returned distances are exact. Lance skips null vectors itself.
    """
    nearest = {"column": VECTOR_COLUMN, "q": queries if len(queries) > 1 else queries[0], "k": limit,
               "metric": METRIC, "nprobes": nprobes, "refine_factor": refine_factor}
    result = dataset.scanner(columns=["segment_id", "_distance"], nearest=nearest, prefilter=allow is not None,
                             row_addr_allowlist=allow).to_table()
    ids, distances = result.column("segment_id").to_pylist(), result.column("_distance").to_pylist()
    which = result.column("query_index").to_pylist() if len(queries) > 1 else [0] * len(ids)
    hits: list[list[tuple[str, float]]] = [[] for _ in queries]
    for j, segment_id, distance in zip(which, ids, distances):
        hits[j].append((segment_id, float(distance)))
    for found in hits:
        found.sort(key=lambda hit: (hit[1], hit[0]))
    return hits
