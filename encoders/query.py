"""Encode a neighbour query on the fly with a feature table's exact encoder version.

The encoder is rebuilt from the table's registry record (name + params JSON)
and its fingerprint checked against the record, so a query file's vector is
the one the encode job stored for the same content: query by a file and query
by the stored segment of that file find the same neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encoders.base import BadInput, EncoderInput
from encoders.media import load_audio_path, load_midi_path
from encoders.registry import EncoderIdentity, EncoderIdentityError, encoder_from_identity
from featurestore.errors import SearchError
from featurestore.feature_table import TEXT_COLUMN
from featurestore.registry import get_encoder_record
from featurestore.search import Neighbor, feature_dim, neighbors, resolve_space
from featurestore.store import Store

QUERY_SEGMENT = "query"


def accepted_input(modality: str) -> str | None:
    """The query input a table of `modality` accepts: audio, midi, text, or None (fused tables)."""
    if modality in TEXT_COLUMN:
        return "text"
    return modality if modality in ("audio", "midi") else None


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
    record = get_encoder_record(store, table)
    if record is None:
        raise SearchError(
            f"{table} has no entry in the encoders registry, so its encoder cannot be rebuilt for a query; "
            "query it by --segment instead"
        )
    wanted = accepted_input(record.modality)
    if kind != wanted:
        accepts = f"--{wanted}" if wanted else "--segment only (no encoder input)"
        raise SearchError(f"{table} holds {record.modality} vectors from {record.spec}; it accepts {accepts}, not --{kind}")
    try:
        encoder = encoder_from_identity(EncoderIdentity.of(record))
    except EncoderIdentityError as exc:
        raise SearchError(f"{exc}: they would not be comparable. Query by --segment instead") from None
    return _encode_one(encoder, _encoder_input(kind, value), record.modality, table, feature_dim(store, table))


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
    """One `chromatic neighbors` request: a table (or space), one query source, filters."""

    table: str | None = None
    space: str | None = None
    segment: str | None = None
    midi_path: Path | None = None
    audio_path: Path | None = None
    text: str | None = None
    k: int = 10
    colors: tuple[str, ...] = ()
    songs: tuple[str, ...] = ()
    where: str | None = None
    include_self: bool = False
    exact: bool | None = None


def find_neighbors(store: Store, request: NeighborQuery) -> tuple[str, list[Neighbor]]:
    """Resolve the table, build the query (stored segment or encoded file/text), search."""
    table = resolve_space(store, request.table, request.space)
    sources = [s for s in ("segment", "midi_path", "audio_path", "text") if getattr(request, s) is not None]
    if len(sources) != 1:
        raise SearchError(
            "give exactly one query: --segment ID, --midi FILE, --audio FILE or --text \"…\""
            + (f" (got {', '.join(sources)})" if sources else "")
        )
    query = request.segment if request.segment is not None else _content_vector(store, table, request)
    found = neighbors(
        store, table, query, k=request.k, colors=request.colors, songs=request.songs, where=request.where,
        include_self=request.include_self, exact=request.exact,
    )
    return table, found


def _content_vector(store: Store, table: str, request: NeighborQuery) -> np.ndarray:
    try:
        if request.midi_path is not None:
            return encode_query(store, table, midi=load_midi_path(request.midi_path))
        if request.audio_path is not None:
            return encode_query(store, table, audio=load_audio_path(request.audio_path))
    except BadInput as exc:
        raise SearchError(str(exc)) from None
    return encode_query(store, table, text=request.text)
