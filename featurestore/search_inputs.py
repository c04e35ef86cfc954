"""What a neighbour query is made of: the table, the query vectors, the metadata filter.

Everything here reads local tables through `Store.dataset` (pylance) so that a
search process never needs lancedb. Filters are resolved on `segments`, the one
home of colour, song and the other metadata: a feature table holds no copy that
a re-ingest could leave stale.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.errors import SearchError
from featurestore.feature_table import PRESENT, feature_table_names
from featurestore.rowmask import allowlist
from featurestore.schemas import SEGMENTS, SYSTEM_TABLES, FeatureTableName, vector_shape
from featurestore.space import VectorSpace
from featurestore.store import Store, sql_in, sql_quote
from featurestore.taxonomy import TaxonomyError, canonical_color

# Ids per `segment_id IN (...)` predicate when stored query vectors or metadata are looked up.
IDS_PER_LOOKUP = 50_000


@dataclass(frozen=True)
class SearchFilter:
    """Metadata prefilter: colours, songs and a SQL predicate over `segments` columns, ANDed."""

    colors: tuple[str, ...] = ()
    songs: tuple[str, ...] = ()
    where: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.colors or self.songs or (self.where and self.where.strip()))


NO_FILTER = SearchFilter()


# -- the table ----------------------------------------------------------------------
def feature_dim(store: Store, table: str) -> int:
    """Length of the (flattened) vectors of a feature table; errors name the valid tables."""
    if table in SYSTEM_TABLES:
        raise SearchError(f"{table!r} is a system table, not a feature table; feature tables: {_feature_listing(store)}")
    FeatureTableName.parse(table)
    return int(np.prod(vector_shape(store.dataset(table).schema)))


def _feature_listing(store: Store) -> str:
    names = feature_table_names(store)
    return ", ".join(names) or "(none: run `chromatic encode` first)"


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


# -- query vectors ------------------------------------------------------------------
def stored_vectors(store: Store, features, segment_ids: Sequence[str], table: str) -> np.ndarray:
    """[len(segment_ids), dim] stored vectors of these segments (`features`: the table's dataset)."""
    rows = {}
    unique = sorted(set(segment_ids))
    for start in range(0, len(unique), IDS_PER_LOOKUP):
        found = features.to_table(columns=["segment_id", "vector", "present", "status"],
                                  filter=sql_in("segment_id", unique[start : start + IDS_PER_LOOKUP]))
        rows.update({row["segment_id"]: row for row in found.to_pylist()})
    for segment_id in segment_ids:
        _check_stored(store, table, segment_id, rows.get(segment_id))
    return np.asarray([rows[s]["vector"] for s in segment_ids], dtype=np.float32)


def _check_stored(store: Store, table: str, segment_id: str, row: dict | None) -> None:
    if row is None:
        if not _segment_exists(store, segment_id):
            raise SearchError(f"unknown segment {segment_id!r}{_did_you_mean(store, segment_id)}")
        raise SearchError(
            f"segment {segment_id!r} has no row in {table} (not encoded yet); run `chromatic encode` for "
            f"{table}, or query by --midi/--audio/--text"
        )
    if row["vector"] is None or not row["present"]:
        raise SearchError(
            f"segment {segment_id!r} has no vector in {table} (status: {row['status'] or 'absent'}); "
            "query another segment or query by content (--midi/--audio/--text)"
        )


def _segment_exists(store: Store, segment_id: str) -> bool:
    if not store.has_table(SEGMENTS):
        return False
    return store.dataset(SEGMENTS).count_rows(filter=f"segment_id = {sql_quote(segment_id)}") > 0


def _did_you_mean(store: Store, segment_id: str) -> str:
    known = []
    if store.has_table(SEGMENTS):
        known = store.dataset(SEGMENTS).to_table(columns=["segment_id"]).column("segment_id").to_pylist()
    close = difflib.get_close_matches(segment_id, known, n=3)
    if close:
        return f"; did you mean {', '.join(close)}?"
    return f"; the store has {len(known)} segments (see `chromatic info`)"


def checked_query_vector(query, dim: int, table: str) -> np.ndarray:
    vector = np.asarray(query, dtype=np.float32).reshape(-1)
    if vector.size != dim:
        raise SearchError(f"query vector has {vector.size} values but {table} holds {dim}-d vectors")
    if not np.all(np.isfinite(vector)):
        raise SearchError("query vector holds NaN or infinite values")
    if not np.any(vector):
        raise SearchError("query vector is all zeros: cosine distance is undefined for it")
    return vector


def in_space(space: VectorSpace, vectors: np.ndarray) -> np.ndarray:
    """Query rows moved into the table's search space; a row with no direction there is an error."""
    moved = np.atleast_2d(space.transform(vectors))
    if space.standardised and not np.all(np.any(moved, axis=1)):
        raise SearchError(
            "the query vector equals the table's per-feature mean, so it has no direction in the standardised "
            "space this table is searched in; query another segment or file"
        )
    return moved


# -- the metadata filter ------------------------------------------------------------
def candidate_segment_ids(
    store: Store, colors: Sequence[str] = (), songs: Sequence[str] = (), where: str | None = None
) -> list[str] | None:
    """Segment ids passing the metadata filters, or None when there are no filters."""
    search_filter = SearchFilter(tuple(colors), tuple(songs), where)
    if search_filter.empty:
        return None
    return filter_segment_ids(store.dataset(SEGMENTS), search_filter).to_pylist()


def filter_segment_ids(segments, search_filter: SearchFilter) -> pa.Array | None:
    """Arrow array of the segment ids passing `search_filter` in `segments` (a Lance dataset); None: no filter."""
    if search_filter.empty:
        return None
    clauses = []
    if search_filter.colors:
        clauses.append(sql_in("color", [_canonical(c) for c in search_filter.colors]))
    if search_filter.songs:
        _check_songs(segments, search_filter.songs)
        clauses.append(sql_in("song_id", search_filter.songs))
    where = search_filter.where
    if where and where.strip():
        clauses.append(f"({where})")
    try:
        found = segments.to_table(columns=["segment_id"], filter=" AND ".join(clauses))
    except (ValueError, RuntimeError, OSError) as exc:
        if not (where and where.strip()):
            raise
        columns = ", ".join(segments.schema.names)
        reason = str(exc).strip().splitlines()[0]
        raise SearchError(
            f"bad --where predicate {where!r}: {reason}. It is SQL over the segments columns: {columns}; "
            "e.g. \"bpm > 120 AND has_lyrics\""
        ) from None
    return found.column("segment_id").combine_chunks()


def _canonical(color: str) -> str:
    try:
        return canonical_color(color)
    except TaxonomyError as exc:
        raise SearchError(str(exc)) from None


def _check_songs(segments, songs: Sequence[str]) -> None:
    found = set(segments.to_table(columns=["song_id"], filter=sql_in("song_id", songs)).column("song_id").to_pylist())
    unknown = [s for s in songs if s not in found]
    if unknown:
        known = set(segments.to_table(columns=["song_id"]).column("song_id").to_pylist())
        shown = sorted(known)[:12]
        more = f" … ({len(known)} songs)" if len(known) > len(shown) else ""
        raise SearchError(f"unknown song(s) {', '.join(unknown)}; known songs: {', '.join(shown)}{more}")


# -- the filter as rows of a feature table ---------------------------------------------------
def present_rows(dataset) -> tuple[pa.Array, np.ndarray]:
    """(segment ids, u64 row addresses) of a feature table's rows with a vector (`dataset`: one version)."""
    rows = dataset.to_table(columns=["segment_id"], filter=PRESENT, with_row_address=True)
    return rows.column("segment_id").combine_chunks(), rows.column("_rowaddr").to_numpy().astype(np.uint64)


@dataclass(frozen=True)
class Candidates:
    """A filter's matches that have a vector: ids and row addresses in this session's table version."""

    ids: pa.Array
    addrs: np.ndarray

    @classmethod
    def matching(cls, rows: tuple[pa.Array, np.ndarray], segment_ids: pa.Array) -> Candidates:
        """The rows (`present_rows`' ids and addresses) whose segment id is among `segment_ids`."""
        return cls._where(rows, _among(rows[0], segment_ids))

    @classmethod
    def excluding(cls, rows: tuple[pa.Array, np.ndarray], segment_ids: pa.Array) -> Candidates:
        """The rows whose segment id is not among `segment_ids`."""
        return cls._where(rows, ~_among(rows[0], segment_ids))

    @classmethod
    def _where(cls, rows: tuple[pa.Array, np.ndarray], mask: np.ndarray) -> Candidates:
        row_ids, addrs = rows
        return cls(row_ids.filter(pa.array(mask)), addrs[mask])

    @property
    def rows(self) -> tuple[pa.Array, np.ndarray]:
        return self.ids, self.addrs

    @property
    def size(self) -> int:
        return len(self.addrs)

    @cached_property
    def allow(self) -> bytes:
        return allowlist(self.addrs)

    @property
    def nbytes(self) -> int:  # with the allow-list it builds (at most ~1/8 of the addresses' bytes + headers)
        return int(self.ids.nbytes + self.addrs.nbytes * 1.25)


def _among(row_ids: pa.Array, segment_ids: pa.Array) -> np.ndarray:
    return pc.is_in(row_ids, value_set=segment_ids.cast(pa.string())).to_numpy(zero_copy_only=False)
