"""Nearest-neighbour search over one feature table, with metadata prefilters.

Metadata (colour, song, times) lives in `segments`, vectors in the feature
table. A filter is therefore resolved to a segment-id set on `segments` first
and then applied to the vector search as a prefilter: k results come back
whenever k matching vectors exist, however far away the nearest matches lie
(a postfilter over the global top-k would return fewer). Small candidate sets
are searched exactly in numpy; large ones use the ANN index built by
`featurestore.vector_index.build_index` when there is one.

The metric is cosine everywhere (index, ANN query, exact search): it equals
the L2 ranking on normalised embeddings. Tables of raw, not unit-norm
statistics (the weight-free encoders) are first z-scored per feature
(`featurestore.space`), query included, and then always searched exactly.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from featurestore.errors import SearchError
from featurestore.feature_table import PRESENT, feature_table_names
from featurestore.schemas import SEGMENTS, SYSTEM_TABLES, FeatureTableName, vector_shape
from featurestore.space import COSINE_SPACE, VectorSpace, batch_matrix, table_space
from featurestore.store import Store, sql_in, sql_quote
from featurestore.taxonomy import TaxonomyError, canonical_color
from featurestore.vector_index import METRIC, IndexSettings, build_index, usable_vector_index

__all__ = ["Neighbor", "SearchSettings", "IndexSettings", "neighbors", "build_index", "resolve_space"]

NEIGHBOR_METADATA = ["segment_id", "song_id", "color", "start_s", "end_s"]


@dataclass(frozen=True)
class SearchSettings:
    """How a query runs. Defaults reach recall@10 >= 0.95 on the benchmark (BENCHMARKS.md)."""

    # Fewer candidates than this are searched exactly: as fast as the index there (BENCHMARKS.md).
    exact_below: int = 2_000
    nprobes: int = 20
    # Re-rank 20x k candidates on full vectors: recall@10 0.997 vs 0.973 at 10, for ~equal latency.
    refine_factor: int = 20
    # Ids per `segment_id IN (...)` predicate; larger sets run as several queries, merged.
    ids_per_query: int = 50_000
    scan_batch: int = 8192


DEFAULT_SETTINGS = SearchSettings()


@dataclass(frozen=True)
class Neighbor:
    rank: int
    segment_id: str
    song_id: str | None
    color: str | None
    start_s: float | None
    end_s: float | None
    distance: float

    def to_dict(self) -> dict:
        return asdict(self)


def neighbors(
    store: Store,
    table: str,
    query: np.ndarray | str,
    k: int = 10,
    colors: Sequence[str] = (),
    songs: Sequence[str] = (),
    where: str | None = None,
    include_self: bool = False,
    exact: bool | None = None,
    settings: SearchSettings = DEFAULT_SETTINGS,
) -> list[Neighbor]:
    """The k nearest segments to `query` (a vector, or a segment id whose stored vector is used).

    `colors`, `songs` and `where` (SQL over `segments` columns) prefilter the
    candidates. Null vectors never come back; the query segment itself only
    with `include_self`. `exact=None` picks exact or ANN search by size; tables
    searched in standardised space (see `featurestore.space`) are always exact.
    """
    if not isinstance(k, int) or k < 1:
        raise SearchError(f"k must be a positive integer, got {k!r}")
    dim = feature_dim(store, table)
    query_id = query if isinstance(query, str) else None
    vector = stored_vector(store, table, query_id) if query_id else checked_query_vector(query, dim, table)
    space = table_space(store, table)
    vector = _in_space(space, vector)
    candidates = candidate_segment_ids(store, colors, songs, where)
    skip = set() if include_self or query_id is None else {query_id}
    hits = _search(store, table, space, vector, k + len(skip), candidates, exact, settings)
    hits = [hit for hit in hits if hit[0] not in skip][:k]
    return _with_metadata(store, hits)


# -- the query vector -----------------------------------------------------------
def feature_dim(store: Store, table: str) -> int:
    """Length of the (flattened) vectors of a feature table; errors name the valid tables."""
    if table in SYSTEM_TABLES:
        raise SearchError(f"{table!r} is a system table, not a feature table; feature tables: {_feature_listing(store)}")
    FeatureTableName.parse(table)
    return int(np.prod(vector_shape(store.table(table).schema)))


def stored_vector(store: Store, table: str, segment_id: str) -> np.ndarray:
    """The stored vector of one segment; errors say why it has none."""
    rows = store.read(table, ["vector", "present", "status"], where=f"segment_id = {sql_quote(segment_id)}")
    if rows.num_rows == 0:
        if store.count(SEGMENTS, f"segment_id = {sql_quote(segment_id)}") == 0:
            raise SearchError(f"unknown segment {segment_id!r}{_did_you_mean(store, segment_id)}")
        raise SearchError(
            f"segment {segment_id!r} has no row in {table} (not encoded yet); run `chromatic encode` for "
            f"{table}, or query by --midi/--audio/--text"
        )
    row = rows.to_pylist()[0]
    if row["vector"] is None or not row["present"]:
        raise SearchError(
            f"segment {segment_id!r} has no vector in {table} (status: {row['status'] or 'absent'}); "
            "query another segment or query by content (--midi/--audio/--text)"
        )
    return np.asarray(row["vector"], dtype=np.float32)


def checked_query_vector(query, dim: int, table: str) -> np.ndarray:
    vector = np.asarray(query, dtype=np.float32).reshape(-1)
    if vector.size != dim:
        raise SearchError(f"query vector has {vector.size} values but {table} holds {dim}-d vectors")
    if not np.all(np.isfinite(vector)):
        raise SearchError("query vector holds NaN or infinite values")
    if not np.any(vector):
        raise SearchError("query vector is all zeros: cosine distance is undefined for it")
    return vector


def _in_space(space: VectorSpace, vector: np.ndarray) -> np.ndarray:
    moved = space.transform(vector)
    if space.standardised and not np.any(moved):
        raise SearchError(
            "the query vector equals the table's per-feature mean, so it has no direction in the standardised "
            "space this table is searched in; query another segment or file"
        )
    return moved


def _did_you_mean(store: Store, segment_id: str) -> str:
    known = store.read(SEGMENTS, ["segment_id"]).column("segment_id").to_pylist()
    close = difflib.get_close_matches(segment_id, known, n=3)
    if close:
        return f"; did you mean {', '.join(close)}?"
    return f"; the store has {len(known)} segments (see `chromatic info`)"


def _feature_listing(store: Store) -> str:
    names = feature_table_names(store)
    return ", ".join(names) or "(none: run `chromatic encode` first)"


# -- metadata prefilter ---------------------------------------------------------
def candidate_segment_ids(
    store: Store, colors: Sequence[str] = (), songs: Sequence[str] = (), where: str | None = None
) -> list[str] | None:
    """Segment ids passing the metadata filters, or None when there are no filters."""
    clauses = []
    if colors:
        clauses.append(sql_in("color", [_canonical(c) for c in colors]))
    if songs:
        _check_songs(store, songs)
        clauses.append(sql_in("song_id", songs))
    if where and where.strip():
        clauses.append(f"({where})")
    if not clauses:
        return None
    try:
        found = store.read(SEGMENTS, ["segment_id"], where=" AND ".join(clauses))
    except (ValueError, RuntimeError, OSError) as exc:
        if not where:
            raise
        columns = ", ".join(store.table(SEGMENTS).schema.names)
        reason = str(exc).strip().splitlines()[0]
        raise SearchError(
            f"bad --where predicate {where!r}: {reason}. It is SQL over the segments columns: {columns}; "
            "e.g. \"bpm > 120 AND has_lyrics\""
        ) from None
    return found.column("segment_id").to_pylist()


def _canonical(color: str) -> str:
    try:
        return canonical_color(color)
    except TaxonomyError as exc:
        raise SearchError(str(exc)) from None


def _check_songs(store: Store, songs: Sequence[str]) -> None:
    found = set(store.read(SEGMENTS, ["song_id"], where=sql_in("song_id", songs)).column("song_id").to_pylist())
    unknown = [s for s in songs if s not in found]
    if unknown:
        known = set(store.read(SEGMENTS, ["song_id"]).column("song_id").to_pylist())
        shown = sorted(known)[:12]
        more = f" … ({len(known)} songs)" if len(known) > len(shown) else ""
        raise SearchError(f"unknown song(s) {', '.join(unknown)}; known songs: {', '.join(shown)}{more}")


# -- search -----------------------------------------------------------------------
def _search(store, table, space, vector, limit, candidates, exact, settings) -> list[tuple[str, float]]:
    if candidates is not None and not candidates:
        return []
    tbl = store.table(table)
    if _searches_exactly(store, table, tbl, space, candidates, exact, settings):
        return exact_search(store, table, vector, limit, candidates, settings, space)
    hits = _ann_search(tbl, vector, limit, candidates, settings)
    if candidates is not None and len(hits) < min(limit, len(candidates)):
        # Fewer hits than candidates: some candidates may simply have no vector, so
        # let the exact scan decide rather than return short.
        return exact_search(store, table, vector, limit, candidates, settings, space)
    return hits


def _searches_exactly(store, table, tbl, space, candidates, exact, settings) -> bool:
    if exact:
        return True
    if space.standardised:
        if exact is False:
            raise SearchError(
                f"{table} holds raw feature statistics (not unit-norm vectors), which are searched exactly in "
                "standardised space; an ANN index would rank by another metric. Drop --ann"
            )
        return True
    if not usable_vector_index(tbl):
        if exact is False:
            raise SearchError(
                f"{table} has no cosine ANN index; build one with `chromatic index {table}` (add --min-rows 0 "
                "for a small table), or search exactly (drop --ann)"
            )
        return True
    if exact is False:
        return False
    size = len(candidates) if candidates is not None else store.count(table, PRESENT)
    return size < settings.exact_below


def exact_search(
    store: Store, table: str, vector: np.ndarray, limit: int, candidates: list[str] | None, settings=DEFAULT_SETTINGS,
    space: VectorSpace = COSINE_SPACE,
) -> list[tuple[str, float]]:
    """Brute-force cosine over the present vectors (of the candidates): [(segment_id, distance)] nearest first.

    `vector` is already in `space`; the stored vectors are moved into it batch by batch.
    """
    best_ids = np.empty(0, dtype=object)
    best_dist = np.empty(0, dtype=np.float64)
    for ids, matrix in _vector_batches(store, table, candidates, settings):
        best_ids = np.concatenate([best_ids, ids])
        best_dist = np.concatenate([best_dist, cosine_distances(space.transform(matrix), vector)])
        if best_dist.size > limit:
            best_ids, best_dist = _nearest(best_ids, best_dist, limit)
    best_ids, best_dist = _nearest(best_ids, best_dist, limit)
    return [(str(i), float(d)) for i, d in zip(best_ids, best_dist)]


def _nearest(ids: np.ndarray, distances: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The `limit` smallest distances, ties broken by segment id so batch order never matters."""
    if distances.size > limit:
        near = distances <= np.partition(distances, limit - 1)[limit - 1]
        ids, distances = ids[near], distances[near]
    order = np.lexsort((ids.astype(str), distances))[:limit]
    return ids[order], distances[order]


def cosine_distances(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """1 - cosine similarity, the distance lancedb reports for metric "cosine"."""
    norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(query))
    sims = matrix @ query
    distances = np.ones(len(matrix), dtype=np.float64)
    # A zero vector has no direction: it counts as orthogonal to everything.
    nonzero = norms > 0
    distances[nonzero] = 1.0 - sims[nonzero] / norms[nonzero]
    return distances


def _vector_batches(store, table, candidates, settings) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    if candidates is None:
        predicates = [PRESENT]
    else:
        predicates = [f"{PRESENT} AND {sql_in('segment_id', chunk)}" for chunk in _chunks(candidates, settings)]
    for predicate in predicates:
        for batch in store.scan(table, ["segment_id", "vector"], where=predicate, batch_size=settings.scan_batch):
            ids, matrix = batch_matrix(batch)
            if len(ids):
                yield ids, matrix


def _chunks(ids: list[str], settings: SearchSettings) -> Iterator[list[str]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), settings.ids_per_query):
        yield ordered[start : start + settings.ids_per_query]


def _ann_search(tbl, vector, limit, candidates, settings) -> list[tuple[str, float]]:
    if candidates is None:
        # Lance skips null vectors by itself; a `present` predicate would only add a mask pass.
        return _ann_query(tbl, vector, limit, None, settings.nprobes, settings)
    hits: list[tuple[str, float]] = []
    for chunk in _chunks(candidates, settings):
        predicate = f"{PRESENT} AND {sql_in('segment_id', chunk)}"
        # No probe cap (0): a filter whose matches lie outside the nearest partitions (a
        # colour unlike the query) would otherwise come back short.
        hits.extend(_ann_query(tbl, vector, limit, predicate, 0, settings))
    hits.sort(key=lambda hit: (hit[1], hit[0]))
    return hits[:limit]


def _ann_query(tbl, vector, limit, predicate, max_nprobes, settings) -> list[tuple[str, float]]:
    query = tbl.search(vector, vector_column_name="vector").distance_type(METRIC)
    if predicate:
        query = query.where(predicate, prefilter=True)
    # refine_factor re-ranks on the full vectors, so the returned distances are exact.
    result = (
        query.minimum_nprobes(settings.nprobes)
        .maximum_nprobes(max_nprobes)
        .refine_factor(settings.refine_factor)
        .limit(limit)
        .select(["segment_id", "_distance"])
        .to_arrow()
    )
    return list(zip(result.column("segment_id").to_pylist(), result.column("_distance").to_pylist()))


def _with_metadata(store: Store, hits: list[tuple[str, float]]) -> list[Neighbor]:
    if not hits:
        return []
    ids = [segment_id for segment_id, _ in hits]
    rows = store.read(SEGMENTS, NEIGHBOR_METADATA, where=sql_in("segment_id", ids)).to_pylist()
    meta = {row["segment_id"]: row for row in rows}
    out = []
    for rank, (segment_id, distance) in enumerate(hits, start=1):
        row = meta.get(segment_id, {})  # a feature row whose segment was deleted keeps blank metadata
        out.append(
            Neighbor(
                rank, segment_id, row.get("song_id"), row.get("color"), row.get("start_s"), row.get("end_s"),
                float(distance),
            )
        )
    return out


# -- choosing a table -------------------------------------------------------------
def resolve_space(store: Store, table: str | None = None, space: str | None = None) -> str:
    """`--table audio.clap.v1` or `--space clap:v1` -> the one feature table meant."""
    if bool(table) == bool(space):
        raise SearchError("give exactly one of --table (e.g. audio.clap.v1) or --space (e.g. clap:v1)")
    if table:
        feature_dim(store, table)
        return table
    encoder, sep, version = space.partition(":")
    if not sep or not encoder or not version:
        raise SearchError(f"bad --space {space!r}; expected ENCODER:VERSION, e.g. clap:v1")
    spaces = _feature_spaces(store)
    matches = [name for name, spec in spaces.items() if spec == space]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(sorted(set(spaces.values()))) or "(none: run `chromatic encode` first)"
        raise SearchError(f"no feature table for space {space!r}; known spaces: {known}")
    raise SearchError(f"space {space!r} matches several tables: {', '.join(matches)}; choose one with --table")


def _feature_spaces(store: Store) -> dict[str, str]:
    return {name: FeatureTableName.parse(name).spec for name in feature_table_names(store)}
