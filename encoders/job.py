"""The encode job: run one encoder version over the store and write its feature tables.

One table per modality the encoder reads (`{modality}.{encoder}.{version}`).
Versions are immutable: the job claims each table's registry row with the
encoder's fingerprint, so another config under the same version is refused and
the same config resumes. The plan is made by content digest
(featurestore/lineage.py): a segment is encoded when it has no row, or when its
row was computed from another input than the segment has now (changed MIDI,
edited lyrics; a removed input gives an `absent` row), or from an unrecorded
one (rows written before lineage). Every row records the digest of its input.
Every segment ends with exactly one row: a vector, or a null vector with the
reason (`absent`, `error: …`). The writer lock of each table is held for the
whole job. The table is `complete` only if, when the job ends, every segment of
`segments` (re-read then: an ingest may have run meanwhile) has a row computed
from its current input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from encoders.base import Encoder
from encoders.device import check_device_name
from encoders.errors import BadInputError, EncoderError
from encoders.pipeline import BackgroundWriter, ChunkResult, Preparer, WorkItem, encode_chunk
from encoders.registry import build_encoder, get_encoder_class
from featurestore.errors import SchemaMismatchError
from featurestore.feature_table import (
    PRESENT,
    SEGMENT_INPUT_COLUMNS,
    TEXT_COLUMN,
    finish_table,
    has_modality,
    rows_from_entries,
)
from featurestore.lineage import INPUT_DIGEST, current_input_digests, is_current, recorded_digests, stale_counts
from featurestore.registry import EncoderRecord, claim_version, get_encoder_record, put_encoder_record
from featurestore.schemas import SEGMENTS, FeatureTableName, feature_schema, vector_shape
from featurestore.space import vector_rows
from featurestore.store import Store

# (table, segments written, segments pending): called as rows land, from the writer thread.
EncodeProgressFn = Callable[[str, int, int], None]
_ABSENT_CHUNK = 256  # absent rows still carry a zero-filled vector slot; keep each write small


def default_workers(device: str) -> int:
    """Prepare inline on CPU; spawned workers only pay off when the model runs elsewhere.

    Measured here (BENCHMARKS.md, Encode): on a 2-core CPU, 2 workers made every
    encoder 3-17x slower and CLAP's wall/model ratio 1.56 instead of 1.12,
    because workers and the model compete for the same cores.
    """
    if device.split(":")[0] == "cpu":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


@dataclass(frozen=True)
class EncodeConfig:
    """What to encode. `params` may be given as a dict; it is stored as sorted pairs."""

    encoder: str
    version: str
    params: tuple[tuple[str, Any], ...] = ()
    model: str | None = None  # hub id or local dir, passed as the encoder's `model` param
    modalities: tuple[str, ...] = ()  # empty: every modality the encoder reads
    batch_size: int = 32
    device: str = "cpu"
    limit: int | None = None  # encode at most this many pending segments per table
    strict: bool = False  # stop at the first bad input instead of recording it
    workers: int | None = None  # 0: prepare inline; None: default_workers(device)
    optimize_every: int = 50  # compact the table after this many commits

    def __post_init__(self):
        if isinstance(self.params, dict):
            object.__setattr__(self, "params", tuple(sorted(self.params.items())))
        object.__setattr__(self, "modalities", tuple(self.modalities))
        if self.workers is None:
            object.__setattr__(self, "workers", default_workers(self.device))
        for name, low in (("batch_size", 1), ("workers", 0), ("optimize_every", 0)):
            if int(getattr(self, name)) < low:
                raise EncoderError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 0:
            raise EncoderError(f"limit must be >= 0 (or unset for all segments), got {self.limit}")
        check_device_name(self.device)


@dataclass
class TableSummary:
    """What one job did to one feature table (this run only; `rows`/`state` are the table's)."""

    table: str
    pending: int = 0
    skipped_existing: int = 0  # rows already computed from the segment's current input
    stale: int = 0  # part of `pending`: rows re-encoded because their input changed (or was never recorded)
    encoded: int = 0
    reused: int = 0  # part of `encoded`: text already encoded in this table, vector copied
    absent: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # reason -> count
    seconds: float = 0.0
    model_seconds: float = 0.0  # inside encode_batch
    input_wait_seconds: float = 0.0  # the model stage waiting for (or doing) prepare
    chunks_inline: int = 0  # batches prepared in the main process (workers=0, or while workers start)
    chunks_in_workers: int = 0
    startup_seconds: float = 0.0  # engine_ray: until the first batch came back (actor start, model load)
    rows: int = 0
    state: str = "building"

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def segments_per_s(self) -> float:
        done = self.encoded + self.absent + self.failed_total
        return done / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "failed_total": self.failed_total, "segments_per_s": self.segments_per_s}


@dataclass
class EncodeSummary:
    encoder: str
    version: str
    tables: list[TableSummary]
    seconds: float

    def to_dict(self) -> dict:
        return {
            "encoder": self.encoder,
            "version": self.version,
            "seconds": self.seconds,
            "tables": [t.to_dict() for t in self.tables],
        }


@dataclass(frozen=True)
class TablePlan:
    absent: list[str]
    items: list[WorkItem]
    skipped: int
    stale: int = 0
    digests: dict[str, str | None] = field(default_factory=dict)  # segment -> its current input digest

    @property
    def pending(self) -> int:
        return len(self.absent) + sum(len(item.segment_ids) for item in self.items)


# -- entry point ----------------------------------------------------------------------
def run_encode(store: Store, config: EncodeConfig, progress: EncodeProgressFn | None = None) -> EncodeSummary:
    """Encode every segment that has no row yet in each of the encoder's tables."""
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        job = plan_job(store, config, stack)
        preparer = stack.enter_context(Preparer(job.encoder, store, config.workers))
        if job.has_items:
            preparer.start()  # workers spawn and import while this process hashes weights and claims
        records = claim_tables(store, job.encoder, job.names)
        tables = [
            TableJob(store, job.encoder, config, r, job.plans[r.table_name], job.segments, preparer, progress).run()
            for r in records
        ]
    return EncodeSummary(job.encoder.name, config.version, tables, time.perf_counter() - started)


@dataclass(frozen=True)
class JobPlan:
    encoder: Encoder
    names: list[FeatureTableName]
    segments: list[dict]
    plans: dict[str, TablePlan]

    @property
    def has_items(self) -> bool:
        return any(plan.items for plan in self.plans.values())


def plan_job(store: Store, config: EncodeConfig, stack: contextlib.ExitStack) -> JobPlan:
    """Build the encoder, take every table's writer lock (held until `stack` closes) and plan each table.

    Shared by the engines (this module and engine_ray): resume is planned in one place.
    """
    encoder = build_job_encoder(config)
    names = [table_name(encoder, m, config.version) for m in resolve_modalities(encoder, config.modalities)]
    segments = sorted(store.read(SEGMENTS, columns=SEGMENT_INPUT_COLUMNS).to_pylist(), key=lambda s: s["segment_id"])
    for name in names:
        stack.enter_context(store.writer(str(name)))
    plans = {str(n): plan_table(segments, n.modality, recorded_digests(store, str(n)), config.limit,
                                current_input_digests(store, n.modality)) for n in names}
    return JobPlan(encoder, names, segments, plans)


def build_job_encoder(config: EncodeConfig) -> Encoder:
    params = dict(config.params)
    if config.model is not None:
        cls = get_encoder_class(config.encoder)
        fields = {f.name for f in dataclasses.fields(cls.config_cls)}
        if "model" not in fields:
            raise EncoderError(
                f"encoder {config.encoder!r} takes no --model (it loads no weights); its params: "
                f"{', '.join(sorted(fields)) or '(none)'}"
            )
        if "model" in params and params["model"] != config.model:
            raise EncoderError(f"--model {config.model!r} and --param model={params['model']!r} disagree; give one")
        params["model"] = config.model
    return build_encoder(config.encoder, params, device=config.device)


def resolve_modalities(encoder: Encoder, requested: tuple[str, ...]) -> tuple[str, ...]:
    if not requested:
        return tuple(encoder.modalities)
    unknown = [m for m in requested if m not in encoder.modalities]
    if unknown:
        raise EncoderError(
            f"encoder {encoder.name!r} does not read {', '.join(unknown)}; it reads: {', '.join(encoder.modalities)}"
        )
    return tuple(dict.fromkeys(requested))


def table_name(encoder: Encoder, modality: str, version: str) -> FeatureTableName:
    return FeatureTableName.parse(f"{modality}.{encoder.name}.{version}")


# -- registry -------------------------------------------------------------------------
def claim_tables(store: Store, encoder: Encoder, names: list[FeatureTableName]) -> list[EncoderRecord]:
    """Claim every table's version, refusing before any is claimed if one conflicts."""
    weights = encoder.weights_fingerprint()
    wanted = [_record(encoder, name, weights) for name in names]
    for record in wanted:
        existing = get_encoder_record(store, record.table_name)
        if existing is not None and existing.fingerprint != record.fingerprint:
            claim_version(store, record)  # raises VersionConflictError showing the stored config
    claimed = [claim_version(store, record) for record in wanted]
    for record in claimed:
        _ensure_feature_table(store, encoder, record.table_name)
    return claimed


def _record(encoder: Encoder, name: FeatureTableName, weights: str | None) -> EncoderRecord:
    return EncoderRecord(
        table_name=str(name),
        modality=name.modality,
        encoder=encoder.name,
        version=name.version,
        kind=encoder.kind,
        shape=tuple(int(d) for d in encoder.shape),
        dtype=encoder.dtype,
        params=encoder.config.to_json(),
        model_id=encoder.model_id,
        weights_fingerprint=weights,
        fingerprint=encoder.fingerprint(),
        code_version=str(encoder.code_version),
    )


def _ensure_feature_table(store: Store, encoder: Encoder, name: str) -> None:
    shape = tuple(int(d) for d in encoder.shape)
    schema = feature_schema(shape, encoder.dtype)
    table = store.ensure_table(name, schema)
    store.add_missing_columns(name, schema)  # a table from before lineage gains `input_digest`
    stored = vector_shape(table.schema)
    if tuple(stored) != shape:
        raise SchemaMismatchError(
            f"table {name} stores vectors of shape {stored} but encoder {encoder.name!r} produces {shape}; "
            "use a new --version"
        )


def finish_record(store: Store, record: EncoderRecord) -> EncoderRecord:
    """The registry row with fresh counts; complete only if every segment in `segments` now (an ingest may
    have run during the job) has a row computed from its current input."""
    current = current_input_digests(store, record.modality)
    missing = set(current) - store.keys(record.table_name)
    stale = stale_counts(store, record.table_name, record.modality, current)
    return finish_table(store, record, complete=not missing and stale.not_current == 0)


# -- one table ------------------------------------------------------------------------
def plan_table(
    segments: list[dict], modality: str, existing: dict[str, str | None], limit: int | None,
    current: dict[str, str | None] | None = None,
) -> TablePlan:
    """Segments to (re-)encode: absent ones, and work items (one per distinct text for text).

    existing: {segment_id: input digest its row records}; current: {segment_id: its input digest now}.
    A segment is planned when it has no row, or its row is not current (see featurestore/lineage.py).
    """
    current = current or {}
    todo = [s for s in segments if s["segment_id"] not in existing
            or is_current(existing[s["segment_id"]], current.get(s["segment_id"])) is False]
    stale = sum(s["segment_id"] in existing for s in todo)
    skipped = len(segments) - len(todo)
    todo = todo if limit is None else todo[:limit]
    absent = [s["segment_id"] for s in todo if not has_modality(s, modality)]
    present = [s for s in todo if has_modality(s, modality)]
    if modality not in TEXT_COLUMN:
        return TablePlan(absent, [WorkItem((s["segment_id"],)) for s in present], skipped, stale, current)
    by_text: dict[str, list[str]] = {}
    for s in present:
        # A flagged-but-empty text goes to the encoder, whose prepare() reports it as bad input.
        by_text.setdefault(s[TEXT_COLUMN[modality]] or "", []).append(s["segment_id"])
    return TablePlan(absent, [WorkItem(tuple(ids), text) for text, ids in by_text.items()], skipped, stale, current)


@dataclass
class TableJob:
    """Encode the pending segments of one feature table (the job holds its writer lock)."""

    store: Store
    encoder: Encoder
    config: EncodeConfig
    record: EncoderRecord
    plan: TablePlan
    segments: list[dict]
    preparer: Preparer | None  # None where another engine encodes (engine_ray)
    progress: EncodeProgressFn | None

    @property
    def size(self) -> int:
        return int(np.prod(self.record.shape))

    def run(self) -> TableSummary:
        store, name, plan = self.store, self.record.table_name, self.plan
        summary = TableSummary(name, pending=plan.pending, skipped_existing=plan.skipped, stale=plan.stale)
        if plan.pending and self.record.state != "building":
            put_encoder_record(store, replace(self.record, state="building"))
        writer = BackgroundWriter(store, name, self.config.optimize_every, self._written_counter(name, plan.pending),
                                  plan.digests)
        started = time.perf_counter()
        try:
            self._feed(plan, writer, summary)
        except BaseException:
            with contextlib.suppress(Exception):  # keep what was queued; the original error wins
                writer.close()
                finish_record(store, self.record)
            raise
        writer.close()
        if writer.commits:
            store.optimize(name)
        final = finish_record(store, self.record)
        summary.rows, summary.state = final.rows, final.state
        summary.seconds = time.perf_counter() - started
        return summary

    def _written_counter(self, name: str, pending: int) -> Callable[[int], None]:
        """Counts rows written and reports them to the progress callback, if any."""
        written = 0

        def on_written(rows: int) -> None:
            nonlocal written
            written += rows
            if self.progress:
                self.progress(name, written, pending)

        if self.progress:
            self.progress(name, 0, pending)
        return on_written

    def _feed(self, plan: TablePlan, writer: BackgroundWriter, summary: TableSummary) -> None:
        for start in range(0, len(plan.absent), _ABSENT_CHUNK):
            chunk = plan.absent[start : start + _ABSENT_CHUNK]
            writer.put(rows_from_entries([(sid, None, "absent") for sid in chunk], self.size))
        summary.absent = len(plan.absent)
        items = plan.items
        if self.record.modality in TEXT_COLUMN and plan.skipped:
            items = self._reuse_known_texts(items, writer, summary)
        self._feed_items(items, writer, summary)

    def _feed_items(self, items: list[WorkItem], writer: BackgroundWriter, summary: TableSummary) -> None:
        """Prepare and encode in this process (with the Preparer's workers); engine_ray overrides this."""

        def add_model_seconds(seconds: float) -> None:
            summary.model_seconds += seconds

        failed: Counter = Counter()
        before = (self.preparer.wait_seconds, self.preparer.inline_chunks, self.preparer.worker_chunks)
        batch = self.config.batch_size
        batches = (items[i : i + batch] for i in range(0, len(items), batch))
        for prepared in self.preparer.chunks(self.record.modality, batches):
            self._take(encode_chunk(self.encoder, prepared, self.size, add_model_seconds), writer, summary, failed)
        summary.input_wait_seconds = self.preparer.wait_seconds - before[0]
        summary.chunks_inline = self.preparer.inline_chunks - before[1]
        summary.chunks_in_workers = self.preparer.worker_chunks - before[2]

    def _take(self, result: ChunkResult, writer: BackgroundWriter, summary: TableSummary, failed: Counter) -> None:
        """Hand one chunk's rows to the writer and count them (strict: stop at its first failure)."""
        if result.failures and self.config.strict:
            raise BadInputError(self.record.table_name, *result.failures[0])
        writer.put(result.rows)
        summary.encoded += result.encoded
        failed.update(reason_kind(reason) for _, reason in result.failures)
        summary.failed = dict(failed)

    def _reuse_known_texts(self, items: list[WorkItem], writer, summary: TableSummary) -> list[WorkItem]:
        """Copy vectors of texts this table already holds (e.g. a new segment of an encoded song)."""
        if INPUT_DIGEST not in self.store.table(self.record.table_name).schema.names:
            return items
        known_rows = self.store.read(self.record.table_name, ["segment_id", "vector", INPUT_DIGEST], where=PRESENT)
        if not known_rows.num_rows:
            return items
        text_of = {s["segment_id"]: s[TEXT_COLUMN[self.record.modality]] for s in self.segments}
        vectors = vector_rows(known_rows.column("vector"))  # present rows only, so aligned with the ids
        ids, recorded = known_rows.column("segment_id").to_pylist(), known_rows.column(INPUT_DIGEST).to_pylist()
        known: dict[str, np.ndarray] = {}
        for sid, digest, vector in zip(ids, recorded, vectors):
            if is_current(digest, self.plan.digests.get(sid)):  # the row's text is still the segment's text
                known.setdefault(text_of.get(sid), vector)
        for item in items:
            if item.text in known:
                writer.put(rows_from_entries([(sid, known[item.text], None) for sid in item.segment_ids], self.size))
                summary.reused += len(item.segment_ids)
        summary.encoded += summary.reused
        return [item for item in items if item.text not in known]


def reason_kind(reason: str) -> str:
    """Group error reasons that differ only in numbers ("3 NaN samples" ~ "5 NaN samples")."""
    return re.sub(r"\d+(\.\d+)?", "N", reason)
