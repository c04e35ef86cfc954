"""Left-join stored feature tables onto `segments`: the input of every fusion run.

`join(store, {"audio": "clap:v1", "midi": "pianoroll:v2"})` returns one Arrow
table with every segment, its labels, and per input a value column plus a
`{input}_mask` column; a segment with no row, or a null vector, has mask false.
The exact Lance version read of every table is recorded, so a run can be
re-joined later at the same versions.

Lineage (featurestore/lineage.py): a feature row whose recorded input digest
differs from its segment's digest (at the `segments` version read) was computed
from an input that has changed since; it is masked (mask false) and counted as
`stale_rows`, so a model never trains on a vector of MIDI a segment no longer
has. Rows written before lineage are counted as `unverified_rows` and used.
Each table is checked against the digest of its own modality.

Coalesced inputs: `{"midi": "pianoroll:v1|basicpitch:v1"}` fills each segment
from the first listed table that holds a usable vector for it (a MIDI roll where
the segment has MIDI, else the roll transcribed from its audio); the mask is
true where any of them does. Every table must give the same shape. How many rows
each table filled, in all and per colour, is recorded on the input's source. A
spec names `{input}.{encoder}.{version}`, or, when that table does not exist, the
one table of that encoder and version under another modality (transcriptions
are `audio.*` tables feeding the `midi` input).

Input names: an input is named after the modality it reads (`midi`), or
`midi.TAG` where several inputs read one modality (`--midi midistats:v1 --midi
pianoroll:v1` gives `midi.midistats` and `midi.pianoroll`, see
featurestore/input_specs.py);
the part before the dot picks the tables (`midi.pianoroll.v1`) and tells the
scorer what a candidate must give.

pyarrow cannot carry fixed-size-list columns through `Table.join`, so keys are
matched with `pc.index_in` and vectors gathered by row index (numpy `take` per
chunk): no Python loop per row.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.errors import SchemaMismatchError, StoreError, TableNotFoundError
from featurestore.input_specs import ordered_inputs, split_spec
from featurestore.lineage import ABSENT, DIGEST_COLUMN, INPUT_DIGEST, ROW_DIGEST
from featurestore.registry import EncoderRecord, get_encoder_record
from featurestore.schemas import KEY, SEGMENTS, FeatureTableName, input_modality, vector_shape
from featurestore.store import Store

LABEL_COLUMNS: tuple[str, ...] = ("segment_id", "song_id", "color", "temporal", "spatial", "ontological")
# The segment's own lyric availability, whatever the inputs: metrics report the
# no-lyrics subset on the same rows for every model (see fusion/metrics.py).
AVAILABILITY_COLUMNS: tuple[str, ...] = ("has_lyrics",)
_CONVERT_ROWS = 1024  # rows converted to numpy at a time: bounds the temporaries of big tensors



@dataclass(frozen=True)
class TableFill:
    """One table of an input: its identity, the version read, and the rows it supplied."""

    table: str
    modality: str
    lance_version: int
    encoder: str
    version: str
    params: str
    model_id: str | None
    weights_fingerprint: str | None
    fingerprint: str
    code_version: str
    state: str
    present: int  # segments this table holds a usable vector for
    filled: int  # segments whose value came from this table (earlier tables lacked one)
    filled_by_color: dict[str, int]
    stale_rows: int = 0  # rows computed from an input that has changed since: masked
    unverified_rows: int = 0  # rows written before lineage was recorded: used, cannot be checked

    @property
    def spec(self) -> str:
        return f"{self.encoder}:{self.version}"

    def to_dict(self) -> dict:
        return {**self.__dict__, "params": json.loads(self.params)}


@dataclass(frozen=True)
class JoinSource:
    """Where one input came from: every table read for it (`tables`, in fill order; one for a
    plain input), each with its identity and Lance version, and the counts of the input's mask."""

    input: str
    spec: str  # as given: "pianoroll:v1", or "pianoroll:v1|basicpitch:v1" for a coalesced input
    kind: str
    shape: tuple[int, ...]
    dtype: str
    present: int  # segments whose mask is true
    missing_rows: int  # segments the first table has no row for
    null_vectors: int  # segments with a row in the first table but a null vector or present=false
    tables: tuple[TableFill, ...]

    @property
    def coalesced(self) -> bool:
        return len(self.tables) > 1

    @property
    def stale_rows(self) -> int:
        return sum(t.stale_rows for t in self.tables)

    @property
    def unverified_rows(self) -> int:
        return sum(t.unverified_rows for t in self.tables)

    def to_dict(self) -> dict:
        """The input's lineage: its counts and every table's identity (what a frame file records)."""
        counts = {k: getattr(self, k) for k in ("input", "spec", "kind", "dtype", "present", "missing_rows",
                                                "null_vectors", "stale_rows", "unverified_rows")}
        return {**counts, "shape": list(self.shape), "tables": [t.to_dict() for t in self.tables]}

    def fills(self) -> dict[str, dict]:
        """{table: {present, filled, filled_by_color}}: where this input's rows came from."""
        return {
            t.table: {"present": t.present, "filled": t.filled, "filled_by_color": dict(t.filled_by_color)}
            for t in self.tables
        }


@dataclass(frozen=True)
class JoinResult:
    table: pa.Table
    sources: dict[str, JoinSource]  # input name -> source, in input order
    segments_version: int

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.sources)

    @property
    def versions(self) -> dict[str, int]:
        """{table name: Lance version} of everything read, `segments` included."""
        tables = {t.table: t.lance_version for s in self.sources.values() for t in s.tables}
        return {SEGMENTS: self.segments_version, **tables}


@dataclass
class InputArrays:
    """One input as numpy: values [N, *shape] (zero where masked) and mask [N]."""

    values: np.ndarray
    mask: np.ndarray
    invalid_segments: list[str] = field(default_factory=list)  # masked because of non-finite values


def join(store: Store, inputs: dict[str, str], versions: dict[str, int] | None = None) -> JoinResult:
    """Every segment + one value/mask column pair per input.

    versions: {table name: Lance version} to read instead of the latest
    (used to re-join a run exactly as it was trained).
    """
    inputs = ordered_inputs(inputs)
    versions = versions or {}
    segments_version = versions.get(SEGMENTS, store.version(SEGMENTS))
    records = {name: [_registered_table(store, input_modality(name), t) for t in source_tables(store, name, spec)]
               for name, spec in inputs.items()}
    modalities = {r.modality for rs in records.values() for r in rs if r.modality in DIGEST_COLUMN}
    stored = set(store.table(SEGMENTS, segments_version).schema.names)
    digests = [DIGEST_COLUMN[m] for m in modalities if DIGEST_COLUMN[m] in stored and ROW_DIGEST in stored]
    columns = [*LABEL_COLUMNS, *AVAILABILITY_COLUMNS, *digests, *([ROW_DIGEST] if digests else [])]
    table = _read_at(store, SEGMENTS, segments_version, columns).sort_by(KEY)
    current = {m: _current_digests(table, DIGEST_COLUMN[m]) for m in modalities if DIGEST_COLUMN[m] in digests}
    table = table.select([*LABEL_COLUMNS, *AVAILABILITY_COLUMNS])
    sources = {}
    for name, spec in inputs.items():
        at = [versions.get(r.table_name, store.version(r.table_name)) for r in records[name]]
        values, mask, source = _left_join(store, name, spec, list(zip(records[name], at)), table, current)
        table = table.append_column(pa.field(name, values.type), values)
        table = table.append_column(f"{name}_mask", mask)
        sources[name] = source
    return JoinResult(table, sources, segments_version)


def source_tables(store: Store, name: str, spec: str) -> list[str]:
    """Table names of input `name`'s spec, in fill order (see the module doc for how a spec finds its table)."""
    return [_source_table(store, input_modality(name), part) for part in split_spec(spec)]


def _source_table(store: Store, modality: str, spec: str) -> str:
    own = FeatureTableName.from_spec(modality, spec)
    if store.has_table(str(own)):
        return str(own)
    others = [
        t for t in store.table_names()
        if t.count(".") == 2 and t.split(".", 1)[1] == f"{own.encoder}.{own.version}" and not t.startswith("fused.")
    ]
    return others[0] if len(others) == 1 else str(own)  # none or several: the own name's error explains


def _registered_table(store: Store, modality: str, table_name: str) -> EncoderRecord:
    if not store.has_table(table_name):
        existing = [t for t in store.table_names() if t.startswith(f"{modality}.")]
        raise TableNotFoundError(
            table_name, existing, f"encode it first (`chromatic encode`) or pick an existing {modality} table"
        )
    record = get_encoder_record(store, table_name)
    if record is None:
        raise SchemaMismatchError(
            f"table {table_name!r} has no row in the encoders registry, so its kind and shape are unknown; "
            "write feature tables with `chromatic encode` (which registers them)"
        )
    schema = store.table(table_name).schema
    schema_shape, list_size = vector_shape(schema), schema.field("vector").type.list_size
    if list_size != math.prod(record.shape) or schema_shape not in (record.shape, (list_size,)):
        raise SchemaMismatchError(
            f"table {table_name!r} stores vectors of shape {schema_shape} ({list_size} values) but the registry "
            f"says {record.shape}; the table and its registry row disagree: re-encode under a new version"
        )
    return record


def _read_at(store: Store, name: str, version: int, columns: list[str]) -> pa.Table:
    try:
        return store.read(name, columns=columns, version=version)
    except (ValueError, RuntimeError, OSError) as exc:  # lance raises plain errors for unknown versions
        raise StoreError(
            f"cannot read {name!r} at Lance version {version} ({exc}); the version may have been cleaned up. "
            f"Current version: {store.version(name)}"
        ) from exc


def _current_digests(segments: pa.Table, column: str) -> np.ndarray:
    """Each segment's input digest now (ABSENT when it has no such input; None when unknown), as objects."""
    digest = pc.fill_null(segments.column(column), ABSENT)
    known = pc.is_valid(segments.column(ROW_DIGEST))
    return np.asarray(pc.if_else(known, digest, None).to_pylist(), dtype=object)


def _lineage(feature: pa.Table, rows: np.ndarray, current: np.ndarray | None) -> tuple[np.ndarray, int]:
    """(stale [N] bool, unverified count): rows whose recorded input digest differs from the segment's now."""
    stale = np.zeros(len(rows), dtype=bool)
    if current is None:
        return stale, 0
    if INPUT_DIGEST in feature.column_names:
        recorded = np.asarray(feature.column(INPUT_DIGEST).to_pylist() + [None], dtype=object)[rows]
    else:
        recorded = np.full(len(rows), None, dtype=object)
    checkable = (rows >= 0) & np.not_equal(current, None)
    unverified = checkable & np.equal(recorded, None)
    stale = checkable & ~unverified & (recorded != current)
    return stale, int(unverified.sum())


def _left_join(store: Store, name: str, spec: str, tables: list[tuple[EncoderRecord, int]], segments: pa.Table,
               current: dict[str, np.ndarray]):
    """An input's values and mask, each segment filled from the first of `tables` that has it.

    current: {modality: each segment's input digest now}, for lineage (see the module doc)."""
    _check_same_shape(name, [record for record, _ in tables])
    keys, colors = segments.column(KEY), np.asarray(segments.column("color").to_pylist(), dtype=object)
    filled = np.zeros(len(keys), dtype=bool)
    gathers, fills = [], []
    for record, lance_version in tables:
        columns = [KEY, "vector", "present"]
        if INPUT_DIGEST in store.table(record.table_name, lance_version).schema.names:
            columns.append(INPUT_DIGEST)
        feature = _read_at(store, record.table_name, lance_version, columns)
        rows, usable, missing = _match_rows(feature, keys)
        stale, unverified = _lineage(feature, rows, current.get(record.modality))
        usable &= ~stale
        take = usable & ~filled
        filled |= take
        gathers.append((feature.column("vector"), rows, take))
        fills.append(_table_fill(record, lance_version, usable, take, colors, int(stale.sum()), unverified))
        if len(fills) == 1:
            first_missing, first_null = missing, int(((rows >= 0) & ~usable & ~stale).sum())
    values = _gather_vectors(gathers, len(keys))
    first = tables[0][0]
    source = JoinSource(
        input=name, spec=spec, kind=first.kind, shape=tuple(first.shape), dtype=first.dtype,
        present=int(filled.sum()), missing_rows=int(first_missing), null_vectors=first_null, tables=tuple(fills),
    )
    return values, pa.array(filled), source


def _check_same_shape(name: str, records: list[EncoderRecord]) -> None:
    first = records[0]
    for other in records[1:]:
        if tuple(other.shape) != tuple(first.shape) or other.kind != first.kind:
            raise SchemaMismatchError(
                f"input {name!r} coalesces {first.table_name} ({first.kind} {tuple(first.shape)}) with "
                f"{other.table_name} ({other.kind} {tuple(other.shape)}); coalesced sources must give one shape: "
                f"re-encode {other.encoder} under a new version with params matching {first.spec}"
            )


def _match_rows(feature: pa.Table, keys: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, int]:
    """(row of each segment in `feature` or -1, whether that row holds a usable vector, segments without a row)."""
    rows = pc.index_in(keys, value_set=feature.column(KEY).combine_chunks())
    missing = rows.null_count
    rows = pc.fill_null(rows, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    usable = pc.and_(pc.is_valid(feature.column("vector")), pc.fill_null(feature.column("present"), False))
    usable = usable.to_numpy(zero_copy_only=False)
    mask = (rows >= 0) & usable[np.maximum(rows, 0)] if len(usable) else np.zeros(len(rows), dtype=bool)
    return rows, mask, int(missing)


def _table_fill(record: EncoderRecord, lance_version: int, usable, take, colors: np.ndarray, stale: int,
                unverified: int) -> TableFill:
    by_color = Counter(colors[take].tolist())
    return TableFill(
        table=record.table_name, modality=record.modality, lance_version=int(lance_version), encoder=record.encoder,
        version=record.version, params=record.params, model_id=record.model_id,
        weights_fingerprint=record.weights_fingerprint, fingerprint=record.fingerprint,
        code_version=str(record.code_version), state=record.state, present=int(usable.sum()),
        filled=int(take.sum()), filled_by_color=dict(sorted(by_color.items())), stale_rows=stale,
        unverified_rows=unverified,
    )


def _gather_vectors(gathers: list[tuple[pa.ChunkedArray, np.ndarray, np.ndarray]], n: int) -> pa.FixedSizeListArray:
    """Vectors gathered with numpy chunk by chunk: from each (column, rows, take), rows where `take`.

    `ChunkedArray.take` on fixed-size lists is ~10x slower and peaks at several
    copies of a piano-roll table; this copies each wanted vector once. The
    result has the first column's type (null where no column supplied a row).
    """
    list_type = gathers[0][0].type
    out = np.zeros((n, list_type.list_size), dtype=list_type.value_type.to_pandas_dtype())
    taken = np.zeros(n, dtype=bool)
    for column, rows, take in gathers:
        taken |= take
        start = 0
        for chunk in column.chunks:
            end = start + len(chunk)
            hits = np.flatnonzero(take & (rows >= start) & (rows < end))
            if hits.size:
                out[hits] = _raw_rows(chunk)[rows[hits] - start]
            start = end
    values = pa.Array.from_buffers(list_type.value_type, out.size, [None, pa.py_buffer(out)])  # no copy
    return pa.FixedSizeListArray.from_arrays(values, type=list_type, mask=pa.array(~taken))


def _raw_rows(chunk: pa.FixedSizeListArray) -> np.ndarray:
    """A zero-copy [len, size] view of a fixed-size-list chunk's values buffer.

    Null vectors' slots hold arbitrary values here; callers only read rows whose
    vector is valid (lance stores no null elements inside a valid vector).
    `to_numpy` would instead copy the whole chunk to turn null slots into NaN.
    """
    size = chunk.type.list_size
    child = chunk.values
    dtype = child.type.to_pandas_dtype()
    data = np.frombuffer(child.buffers()[1], dtype=dtype, count=child.offset + len(child))[child.offset :]
    return data[chunk.offset * size : (chunk.offset + len(chunk)) * size].reshape(len(chunk), size)


def input_arrays(result: JoinResult, name: str, dtype=np.float32) -> InputArrays:
    """Input `name` as numpy [N, *shape] in `dtype`; rows with non-finite values are masked and listed."""
    source = result.sources[name]
    column = result.table.column(name)
    mask = result.table.column(f"{name}_mask").to_numpy(zero_copy_only=False).astype(bool)
    size = math.prod(source.shape)
    values = np.zeros((len(mask), size), dtype=dtype)
    start = 0
    for chunk in column.chunks:
        for offset in range(0, len(chunk), _CONVERT_ROWS):
            part = chunk.slice(offset, _CONVERT_ROWS)
            rows = slice(start + offset, start + offset + len(part))
            with np.errstate(over="ignore", invalid="ignore"):  # overflow shows up as inf, caught below
                values[rows] = _raw_rows(part)
            values[rows][~mask[rows]] = 0
        start += len(chunk)
    invalid = _mask_non_finite(values, mask)
    segment_ids = result.table.column(KEY).to_numpy(zero_copy_only=False)
    return InputArrays(values.reshape(len(mask), *source.shape), mask, segment_ids[invalid].tolist())


def _mask_non_finite(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero and unmask rows holding NaN/inf (bad encoder output); return their indices."""
    bad = []
    for start in range(0, len(values), _CONVERT_ROWS):
        block = values[start : start + _CONVERT_ROWS]
        bad.extend(start + np.flatnonzero(~np.isfinite(block).all(axis=1)))
    bad = np.asarray(bad, dtype=np.int64)
    values[bad] = 0
    mask[bad] = False
    return bad
