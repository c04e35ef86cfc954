"""Encode a neighbour query on the fly with a feature table's exact encoder version.

The encoder is rebuilt from the table's registry record (name + params JSON)
and its fingerprint checked against the record, so a query file's vector is
the one the encode job stored for the same content: query by a file and query
by the stored segment of that file find the same neighbours.

`find_neighbors` answers a whole `chromatic neighbors` call with one search
session (`featurestore.search.Searcher`) and one encoder build, and times
opening, encoding and searching separately. Media decoding, the encoder
registry and the encode pipeline are imported only by queries that encode, so
a query by stored segment starts without them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from encoders.base import BadInput, EncoderInput
from featurestore.errors import SearchError
from featurestore.feature_table import TEXT_COLUMN
from featurestore.registry import get_encoder_record
from featurestore.search import Neighbor, Searcher, SearchFilter, feature_dim, resolve_space
from featurestore.store import Store

QUERY_SEGMENT = "query"


def accepted_input(modality: str) -> str | None:
    """The query input a table of `modality` accepts: audio, midi, text, or None (fused tables)."""
    if modality in TEXT_COLUMN:
        return "text"
    return modality if modality in ("audio", "midi") else None


class QueryEncoder:
    """Encodes query inputs for one table with its exact encoder version, rebuilt once and reused."""

    def __init__(self, store: Store, table: str):
        self.table, self.dim = table, feature_dim(store, table)
        self.record = get_encoder_record(store, table)
        if self.record is None:
            raise SearchError(
                f"{table} has no entry in the encoders registry, so its encoder cannot be rebuilt for a query; "
                "query it by --segment instead"
            )
        self._encoder = None

    def encode(self, kind: str, value) -> np.ndarray:
        """`kind` midi (bytes), audio ((samples, sample_rate)) or text (str) -> the table's vector for it."""
        record = self.record
        wanted = accepted_input(record.modality)
        if kind != wanted:
            accepts = f"--{wanted}" if wanted else "--segment only (no encoder input)"
            raise SearchError(
                f"{self.table} holds {record.modality} vectors from {record.spec}; it accepts {accepts}, not --{kind}")
        return _encode_one(self._built(), _encoder_input(kind, value), record.modality, self.table, self.dim)

    def _built(self):
        if self._encoder is None:
            from encoders.registry import EncoderIdentity, EncoderIdentityError, encoder_from_identity

            try:
                self._encoder = encoder_from_identity(EncoderIdentity.of(self.record))
            except EncoderIdentityError as exc:
                raise SearchError(f"{exc}: they would not be comparable. Query by --segment instead") from None
        return self._encoder


def encode_query(
    store: Store,
    table: str,
    midi: bytes | None = None,
    audio: tuple[np.ndarray, int] | None = None,
    text: str | None = None,
) -> np.ndarray:
    """Encode exactly one of midi bytes, (samples, sample_rate) or text as `table`'s encoder did."""
    given = {name: value for name, value in (("midi", midi), ("audio", audio), ("text", text)) if value is not None}
    if len(given) != 1:
        raise SearchError(f"give exactly one query input (midi, audio or text); got {', '.join(given) or 'none'}")
    kind, value = next(iter(given.items()))
    return QueryEncoder(store, table).encode(kind, value)


def _encoder_input(kind: str, value) -> EncoderInput:
    if kind == "midi":
        return EncoderInput(QUERY_SEGMENT, midi=bytes(value))
    if kind == "audio":
        samples, sample_rate = value
        return EncoderInput(QUERY_SEGMENT, audio=samples, sample_rate=sample_rate)
    if not str(value).strip():
        raise SearchError("query text is empty")
    return EncoderInput(QUERY_SEGMENT, text=str(value))


def _encode_one(encoder, item: EncoderInput, modality: str, table: str, dim: int) -> np.ndarray:
    result = encoder.encode([item], modality)[0]
    if isinstance(result, BadInput):
        raise SearchError(f"cannot encode the query for {table}: {result}")
    vector = np.asarray(result, dtype=np.float32).reshape(-1)
    if vector.size != dim:
        raise SearchError(f"the encoder returned {vector.size} values but {table} holds {dim}-d vectors")
    return vector


@dataclass(frozen=True)
class NeighborQuery:
    """One `chromatic neighbors` request: a table (or space), queries of one kind, filters shared by all."""

    table: str | None = None
    space: str | None = None
    segments: tuple[str, ...] = ()
    midi_paths: tuple[Path, ...] = ()
    audio_paths: tuple[Path, ...] = ()
    texts: tuple[str, ...] = ()
    k: int = 10
    colors: tuple[str, ...] = ()
    songs: tuple[str, ...] = ()
    where: str | None = None
    include_self: bool = False
    exact: bool | None = None


@dataclass(frozen=True)
class NeighborResult:
    """Neighbours per query, in query order, and where the time went (seconds: open, encode, search)."""

    table: str
    queries: list[str]
    found: list[list[Neighbor]]
    seconds: dict[str, float] = field(default_factory=dict)
    stale_left_out: int = 0  # rows whose input changed since they were encoded: never searched


_SOURCES = {"segments": "--segment", "midi_paths": "--midi", "audio_paths": "--audio", "texts": "--text"}


def find_neighbors(store: Store, request: NeighborQuery) -> NeighborResult:
    """Resolve the table, open one search session, build every query (stored segment or encoded input), search."""
    table = resolve_space(store, request.table, request.space)
    kinds = [name for name in _SOURCES if getattr(request, name)]
    if len(kinds) != 1:
        raise SearchError(
            "give queries of exactly one kind: --segment ID (or --segments-file), --midi FILE, --audio FILE or "
            "--text \"…\", each repeatable" + (f" (got {', '.join(_SOURCES[k] for k in kinds)})" if kinds else "")
        )
    values = list(getattr(request, kinds[0]))
    started = time.perf_counter()
    searcher = Searcher(store, table)
    opened = time.perf_counter()
    queries = values if kinds[0] == "segments" else _content_vectors(store, table, kinds[0], values)
    encoded = time.perf_counter()
    search_filter = SearchFilter(request.colors, request.songs, request.where)
    found = searcher.search_many(queries, request.k, search_filter, request.include_self, request.exact)
    seconds = {"open": opened - started, "encode": encoded - opened, "search": time.perf_counter() - encoded}
    return NeighborResult(table, [str(v) for v in values], found, {k: round(v, 4) for k, v in seconds.items()},
                          len(searcher.stale_ids))


def _content_vectors(store: Store, table: str, kind: str, values: list) -> list[np.ndarray]:
    from encoders.media import load_audio_path, load_midi_path

    encoder = QueryEncoder(store, table)
    try:
        if kind == "midi_paths":
            return [encoder.encode("midi", load_midi_path(path)) for path in values]
        if kind == "audio_paths":
            return [encoder.encode("audio", load_audio_path(path)) for path in values]
    except BadInput as exc:
        raise SearchError(str(exc)) from None
    return [encoder.encode("text", text) for text in values]


def read_segment_ids(path: Path) -> tuple[str, ...]:
    """Segment ids from a file, one per line; blank lines and lines starting with # are skipped."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SearchError(f"cannot read segment ids from {path}: {exc}") from None
    ids = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not ids:
        raise SearchError(f"{path} holds no segment ids (expected one id per line)")
    return ids
