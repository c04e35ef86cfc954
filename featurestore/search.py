"""Nearest-neighbour search over one feature table, with metadata prefilters.

`Searcher(store, table)` is a search session: it opens the table, its ANN index
and its standardisation statistics once and answers many queries from that one
snapshot (`refresh()` moves it to the latest versions). `neighbors()` is one
query through a fresh session.

Metadata (colour, song, times) lives only in `segments`, vectors in the feature
table. A filter is resolved on `segments` once per session and turned into the
feature table's row addresses; the ANN query then takes them as a bitmap
allow-list (`featurestore.rowmask`), so Lance masks rows before ranking and k
results come back whenever k matching vectors exist, however far away the
nearest matches lie. Exact search reads a candidate set's vectors into RAM once
per session (within `SearchSettings.resident_mb`) and costs one matrix product
per query after that; a set larger than the budget is streamed.

Which path: exact for tables searched in standardised space, without a cosine
ANN index, and for candidate sets under `exact_below`. Otherwise a cost model
(`SearchSettings`, fitted on the benchmark) compares one product over the
candidates in RAM with an index query, whose IVF_PQ scan grows with the rows in
the probed partitions (a filter keeping a fraction f of the table probes
nprobes / f partitions: a one-colour filter scans every partition). A set the
session holds in RAM, or searches again (or at once for a batch of queries) and
is worth reading into RAM, is searched exactly when the model says the product
is cheaper; one-off queries stay on the index. Derived facts (row maps, resolved
filters, index statistics) are shared by the sessions of a process per table
snapshot (`featurestore.search_cache`), so one-shot calls pay them once.

The metric is cosine everywhere (index, ANN query, exact search). Tables of raw,
not unit-norm statistics are z-scored per feature first (`featurestore.space`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.errors import SearchError
from featurestore.feature_table import PRESENT
from featurestore.lineage import stale_segment_ids
from featurestore.resident import Hits, ResidentCache, ResidentVectors, streamed_nearest
from featurestore.schemas import SEGMENTS, FeatureTableName
from featurestore.search_cache import SNAPSHOTS, snapshot_key
from featurestore.search_cost import DEFAULT_SETTINGS, SearchSettings, exact_is_cheaper
from featurestore.search_inputs import (
    IDS_PER_LOOKUP,
    NO_FILTER,
    Candidates,
    SearchFilter,
    candidate_segment_ids,
    checked_query_vector,
    feature_dim,
    filter_segment_ids,
    in_space,
    present_rows,
    resolve_space,
    stored_vectors,
)
from featurestore.space import batch_matrix, table_space
from featurestore.store import Store, sql_in
from featurestore.vector_index import IndexSettings, ann_query, build_index, cosine_ann_index

__all__ = ["Neighbor", "SearchFilter", "SearchSettings", "Searcher", "IndexSettings", "neighbors", "build_index",
           "resolve_space", "candidate_segment_ids", "feature_dim"]

NEIGHBOR_METADATA = ["segment_id", "song_id", "color", "start_s", "end_s"]
_NOT_LOOKED_UP = object()


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
    with `include_self`. Fewer than k come back only when fewer than k segments
    with a vector pass the filter (none when none does). `exact=None` picks
    exact or ANN search (see the module text).
    """
    search_filter = SearchFilter(tuple(colors), tuple(songs), where)
    return Searcher(store, table, settings).search(query, k, search_filter, include_self, exact)


class Searcher:
    """A search session on one feature table: open once, query many times (see the module text)."""

    def __init__(self, store: Store, table: str, settings: SearchSettings = DEFAULT_SETTINGS):
        self.store, self.table, self.settings = store, table, settings
        self.dim = feature_dim(store, table)
        self._resident = ResidentCache(settings.resident_mb * 2**20)
        self._open()

    def _open(self) -> None:
        self._features, self._table_key = self._snapshot(self.table)
        has_segments = self.store.has_table(SEGMENTS)
        self._segments, self._segments_key = self._snapshot(SEGMENTS) if has_segments else (None, None)
        self.space = table_space(self.store, self.table, self._features)
        self._index = _NOT_LOOKED_UP
        self._rows: tuple[pa.Array, np.ndarray] | None = None
        self._stale: pa.Array | None = None
        self._filters: dict[SearchFilter, Candidates | None] = {}
        self._uses: Counter = Counter()  # queries per filter, to read repeatedly searched sets into RAM
        self._calls = 0
        self.rows_read_by_filter = 0  # candidate rows read into RAM set by set (for `_table_read_pays`)
        self._metadata: tuple[dict[str, list], dict[str, int]] | None = None
        self._resident.clear()

    def _snapshot(self, table: str):
        """(Lance dataset at the latest version, its snapshot key). The first dataset opened for a snapshot is
        shared by later sessions: its Lance session keeps the index pages it loaded, which a fresh dataset
        reads again (~40 ms on the benchmark's first index query)."""
        dataset = self.store.dataset(table)
        key = snapshot_key(self.store.uri, table, dataset)
        return SNAPSHOTS.get_or_make(("dataset", key), lambda: dataset), key

    @property
    def versions(self) -> tuple[int, int | None]:
        """(feature table, segments) Lance versions this session answers from."""
        return int(self._features.version), None if self._segments is None else int(self._segments.version)

    def refresh(self) -> bool:
        """Move to the latest table versions (dropping cached filters and vectors) if either changed."""
        seen = self.versions
        latest = self.store.dataset(self.table).version, (
            self.store.dataset(SEGMENTS).version if self.store.has_table(SEGMENTS) else None)
        if latest == seen:
            return False
        self._open()
        return True

    # -- queries ------------------------------------------------------------------------
    def search(self, query: np.ndarray | str, k: int = 10, search_filter: SearchFilter = NO_FILTER,
               include_self: bool = False, exact: bool | None = None) -> list[Neighbor]:
        """The k nearest segments to one query (a vector or a stored segment's id); see `neighbors`."""
        return self.search_many([query], k, search_filter, include_self, exact)[0]

    def search_many(self, queries: Sequence[np.ndarray | str], k: int = 10, search_filter: SearchFilter = NO_FILTER,
                    include_self: bool = False, exact: bool | None = None) -> list[list[Neighbor]]:
        """`search` for several queries with one filter: one index call or one matrix product for all."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise SearchError(f"k must be a positive integer, got {k!r}")
        if not queries:
            return []
        self._calls += 1
        vectors = in_space(self.space, self._query_vectors(queries))
        skip = [q if isinstance(q, str) and not include_self else None for q in queries]
        limit = k + (1 if any(skip) else 0)
        hits = self._hits(vectors, limit, search_filter, exact, len(queries))
        kept = [[h for h in found if h[0] != own][:k] for found, own in zip(hits, skip)]
        return self._with_metadata(kept)

    def _query_vectors(self, queries: Sequence[np.ndarray | str]) -> np.ndarray:
        ids = [q for q in queries if isinstance(q, str)]
        stale = sorted(set(ids) & set(self.stale_ids.to_pylist()))
        if stale:
            raise SearchError(
                f"the stored vector of {', '.join(stale)} in {self.table} was computed from an input that "
                "has changed since (re-ingested); re-encode it (`chromatic encode` for this table), or query by "
                "content (--midi/--audio/--text)")
        stored = dict(zip(ids, stored_vectors(self.store, self._features, ids, self.table))) if ids else {}
        return np.stack([stored[q] if isinstance(q, str) else checked_query_vector(q, self.dim, self.table)
                         for q in queries])

    def _hits(self, vectors: np.ndarray, limit: int, search_filter: SearchFilter, exact, count: int) -> list[Hits]:
        candidates = self._candidates(search_filter)
        if candidates is not None and candidates.size == 0:
            return [[] for _ in vectors]
        self._uses[search_filter] += count
        if self._searches_exactly(search_filter, candidates, exact, limit, count):
            return self._exact(vectors, limit, search_filter, candidates)
        allow = None if candidates is None else candidates.allow
        hits = ann_query(self._features, vectors, limit, self._nprobes(candidates), self.settings.refine_factor, allow)
        if candidates is not None:
            # Short answers: the probed partitions held too few matches; the exact scan decides.
            short = [j for j, found in enumerate(hits) if len(found) < min(limit, candidates.size)]
            if short:
                redone = self._exact(vectors[short], limit, search_filter, candidates)
                for j, found in zip(short, redone):
                    hits[j] = found
        return hits

    # -- choosing exact or ANN --------------------------------------------------------------
    def _searches_exactly(self, search_filter: SearchFilter, candidates: Candidates | None, exact, limit: int,
                          count: int = 1) -> bool:
        if exact:
            return True
        if self.space.standardised:
            if exact is False:
                raise SearchError(
                    f"{self.table} holds raw feature statistics (not unit-norm vectors), which are searched exactly "
                    "in standardised space; an ANN index would rank by another metric. Drop --ann"
                )
            return True
        if self._ann_index() is None:
            if exact is False:
                raise SearchError(
                    f"{self.table} has no cosine ANN index; build one with `chromatic index {self.table}` (add "
                    "--min-rows 0 for a small table), or search exactly (drop --ann)"
                )
            return True
        if exact is False:
            return False
        size = self._candidate_count(candidates)
        if size < self.settings.exact_below:
            return True
        resident = self._resident.get(search_filter)
        # A set searched again is worth reading into RAM (a one-off query is not: the read costs ~20 us a row).
        worth_reading = self._uses[search_filter] > 1 and self._resident.fits(size, self.dim)
        masked = candidates is not None
        # In RAM, one query's product may be pruned by the set's subspace bound (featurestore/subspace.py).
        work = resident.work_per_row if resident is not None and count == 1 else 1.0  # batches: one GEMM
        return ((resident is not None or worth_reading)
                and self.exact_is_cheaper(size, self._nprobes(candidates), limit, masked, work))

    def exact_is_cheaper(self, candidates: int, nprobes: int, limit: int, masked: bool = True,
                         work_per_row: float = 1.0) -> bool:
        """The cost model for this table (see `exact_is_cheaper`)."""
        index = self._ann_index()
        return exact_is_cheaper(self.settings, len(self._present_rows()[1]), self.dim * work_per_row,
                                index.partitions, index.sub_vectors, candidates, nprobes, limit, masked)

    def preload(self) -> int:
        """Read the whole table's vectors into RAM now (within `resident_mb`), so that later exact queries,
        unfiltered ones included, never wait for a read; -> bytes held (0 when it does not fit the budget)."""
        table = self._resident.get(NO_FILTER) or self._read_into_ram(NO_FILTER, self._candidates(NO_FILTER))
        return 0 if table is None else table.nbytes

    def _ann_index(self):
        if self._index is _NOT_LOOKED_UP:
            self._index = SNAPSHOTS.get_or_make(("ann", self._table_key), lambda: cosine_ann_index(self._features))
        return self._index

    def _candidate_count(self, candidates: Candidates | None) -> int:
        return candidates.size if candidates is not None else len(self._present_rows()[1])

    def _nprobes(self, candidates: Candidates | None) -> int:
        partitions = self._ann_index().partitions
        wanted = self.settings.nprobes
        if candidates is not None:
            wanted = math.ceil(wanted * len(self._present_rows()[1]) / max(candidates.size, 1))
        return max(1, min(wanted, partitions))

    # -- exact search -----------------------------------------------------------------------
    def _exact(self, vectors: np.ndarray, limit: int, search_filter: SearchFilter,
               candidates: Candidates | None) -> list[Hits]:
        resident = self._resident.get(search_filter) or self._read_into_ram(search_filter, candidates)
        if resident is not None:
            return resident.nearest(vectors, limit)
        return streamed_nearest(self._vector_batches(candidates), self.space, vectors, limit)

    def _read_into_ram(self, search_filter: SearchFilter, candidates: Candidates | None) -> ResidentVectors | None:
        """A candidate set's vectors in RAM, read filter by filter, or gathered from the whole table once
        reading it in one scan pays (see `_table_read_pays`); None when the set exceeds the budget."""
        size = self._candidate_count(candidates)
        if not self._resident.fits(size, self.dim):
            return None
        table = self._resident.get(NO_FILTER)
        if table is None and candidates is not None and self._table_read_pays(size):
            table = ResidentVectors.from_batches(self._vector_batches(None), self.space, self.dim)
            self._resident.put(NO_FILTER, table)
        if table is not None and candidates is not None:
            resident = table.subset(candidates.addrs)
        else:
            resident = ResidentVectors.from_batches(self._vector_batches(candidates), self.space, self.dim)
            self.rows_read_by_filter += size if candidates is not None else 0
        self._resident.put(search_filter, resident)
        return resident

    def _table_read_pays(self, size: int) -> bool:
        """Ski rental: once the rows this session has read filter by filter (scattered rows, dearer each) plus
        this set would cost as much as one scan of the table, scan it instead and gather every later set from
        it. Only when the table and as many rows again (the gathered copies) fit the RAM budget."""
        rows, s = len(self._present_rows()[1]), self.settings
        by_filter = (self.rows_read_by_filter + size) * s.read_us_per_row_by_filter
        return self._resident.fits(2 * rows, self.dim) and by_filter >= rows * s.read_us_per_row_scanned

    def _vector_batches(self, candidates: Candidates | None):
        """(segment ids, vectors, row addresses) of the candidates with a vector, batch by batch."""
        scan = {"columns": ["segment_id", "vector"], "batch_size": self.settings.scan_batch, "with_row_address": True}
        if candidates is None:
            scanner = self._features.scanner(filter=PRESENT, **scan)
        else:  # (to_batches() would not pass the allow-list on)
            scanner = self._features.scanner(row_addr_allowlist=candidates.allow, **scan)
        for batch in scanner.to_batches():
            batch = batch.filter(pc.is_valid(batch.column("vector"))) if batch.column("vector").null_count else batch
            ids, matrix = batch_matrix(batch)
            if len(ids):
                yield ids, matrix, batch.column("_rowaddr").to_numpy().astype(np.uint64)

    # -- filters ----------------------------------------------------------------------------
    def _candidates(self, search_filter: SearchFilter) -> Candidates | None:
        if search_filter.empty and not len(self.stale_ids):
            return None  # every row with a vector: the index and full reads need no allow-list
        if search_filter.empty:
            return self._filters.setdefault(search_filter, Candidates(*self._present_rows()))
        if search_filter not in self._filters:
            segments = self._segments_or_error()
            key = ("filter", self._table_key, self._segments_key, search_filter)
            self._filters[search_filter] = SNAPSHOTS.get_or_make(
                key, lambda: Candidates.matching(self._present_rows(), filter_segment_ids(segments, search_filter)))
        return self._filters[search_filter]

    def _present_rows(self) -> tuple[pa.Array, np.ndarray]:
        """(segment ids, row addresses) of the rows with a current vector: read once per snapshot in the process."""
        if self._rows is None:
            rows = SNAPSHOTS.get_or_make(("rows", self._table_key), lambda: present_rows(self._features))
            if len(self.stale_ids):
                rows = SNAPSHOTS.get_or_make(("current rows", self._table_key, self._segments_key),
                                             lambda: Candidates.excluding(rows, self.stale_ids).rows)
            self._rows = rows
        return self._rows

    @property
    def stale_ids(self) -> pa.Array:
        """Segments whose vector was computed from an input that has changed since (re-ingested audio or MIDI):
        left out of every search, as the join leaves them out of training, until `chromatic encode` redoes them."""
        if self._stale is None:
            modality = FeatureTableName.parse(self.table).modality
            self._stale = SNAPSHOTS.get_or_make(
                ("stale", self._table_key, self._segments_key),
                lambda: stale_segment_ids(self._features, self._segments, modality, PRESENT))
        return self._stale

    def _segments_or_error(self):
        """`segments` at this session's version; without it, the typed error naming the tables that exist."""
        if self._segments is None:
            return self.store.dataset(SEGMENTS)  # raises TableNotFoundError naming what exists
        return self._segments

    # -- metadata ---------------------------------------------------------------------------
    def _with_metadata(self, hits: list[Hits]) -> list[list[Neighbor]]:
        meta = self._metadata_for({segment_id for found in hits for segment_id, _ in found})
        out = []
        for found in hits:
            rows = []
            for rank, (segment_id, distance) in enumerate(found, start=1):
                row = meta.get(segment_id, {})  # a feature row whose segment was deleted keeps blank metadata
                rows.append(Neighbor(rank, segment_id, row.get("song_id"), row.get("color"), row.get("start_s"),
                                     row.get("end_s"), float(distance)))
            out.append(rows)
        return out

    def _metadata_for(self, ids: set[str]) -> dict[str, dict]:
        if not ids or self._segments is None:
            return {}
        if self._metadata is None and self._calls > 1:
            # A session that keeps querying pays one read of the metadata instead of a lookup per query
            # (as column lists with an id -> row index: a few times cheaper to build than a dict per row).
            table = self._segments.to_table(columns=NEIGHBOR_METADATA)
            columns = {name: table.column(name).to_pylist() for name in NEIGHBOR_METADATA}
            self._metadata = (columns, {sid: i for i, sid in enumerate(columns["segment_id"])})
        if self._metadata is not None:
            columns, where = self._metadata
            return {i: {name: values[where[i]] for name, values in columns.items()} for i in ids if i in where}
        ordered, found = sorted(ids), {}
        for start in range(0, len(ordered), IDS_PER_LOOKUP):
            predicate = sql_in("segment_id", ordered[start : start + IDS_PER_LOOKUP])
            found.update({r["segment_id"]: r for r in self._segments.to_table(
                columns=NEIGHBOR_METADATA, filter=predicate).to_pylist()})
        return found
