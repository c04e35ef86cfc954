"""The encode job on a Ray cluster (`chromatic encode … --engine ray`).

The driver does what the local engine does, with the same code (encoders/job.py):
it builds the encoder, takes every table's writer lease, plans (resume = the
segments without a row), claims the version (immutability, fingerprint), writes
absent rows and reused texts, and at the end recounts the registry row. Only
the work items go to Ray Data: an actor pool where each actor loads the model
once, reads its batch's media from the store and runs `prepare` then
`encode_batch` (the local engine's PrepareContext and encode_chunk, so the
vectors are the same); two calls run at once per actor, so one batch's
decode/resample/features overlap the other's forward. Rows come back to the
driver, which alone commits them, `commit_rows` at a time, under the lease.

Faults: Ray restarts a killed actor and retries its batch (Ray Data's actor
pools default to max_restarts=-1, max_task_retries=-1); a killed driver loses
its uncommitted rows at most, and its lease expires after the store's lease TTL,
when a re-run resumes. Workers need this package and the encoder's weights at
the same path as the driver (weights are checked by fingerprint in each actor).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from encoders.base import Encoder
from encoders.errors import EncoderError
from encoders.job import EncodeConfig, EncodeProgressFn, EncodeSummary, TableJob, TableSummary, claim_tables, plan_job
from encoders.pipeline import BackgroundWriter, ChunkResult, PrepareContext, WorkItem, encode_chunk
from featurestore.errors import ChromaticError
from featurestore.objectstore import StoreOptions
from featurestore.store import Store

_MODEL_SECONDS = "_model_seconds"  # rides along with each batch's rows; dropped before the commit
_ERROR_PREFIX = "error: "


@dataclass(frozen=True)
class RayEngineConfig:
    """Where and how wide the Ray engine runs."""

    address: str | None = None  # None: $RAY_ADDRESS if set, else a local cluster for this job
    actors: int = 2
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0
    commit_rows: int = 1024  # rows per commit: a killed driver loses at most this many

    def __post_init__(self):
        for name, low in (("actors", 1), ("commit_rows", 1)):
            if int(getattr(self, name)) < low:
                raise EncoderError(f"{name} must be >= {low}, got {getattr(self, name)}")
        for name in ("gpus_per_actor", "cpus_per_actor"):
            if float(getattr(self, name)) < 0:
                raise EncoderError(f"{name} must be >= 0, got {getattr(self, name)}")


def run_encode_ray(
    store: Store, config: EncodeConfig, engine: RayEngineConfig = RayEngineConfig(),
    progress: EncodeProgressFn | None = None,
) -> EncodeSummary:
    """Encode every segment without a row, on Ray; the same rows as `run_encode`."""
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        job = plan_job(store, config, stack)
        records = claim_tables(store, job.encoder, job.names)
        if job.has_items:
            stack.enter_context(ray_session(engine.address))
        tables = [
            _RayTableJob(store, job.encoder, config, r, job.plans[r.table_name], job.segments, None, progress,
                         engine).run()
            for r in records
        ]
    return EncodeSummary(job.encoder.name, config.version, tables, time.perf_counter() - started)


@contextlib.contextmanager
def ray_session(address: str | None):
    """Connect to (or start) Ray for one job; a session already open (tests, notebooks) is reused."""
    import ray

    if ray.is_initialized():
        yield
        return
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False, configure_logging=False,
                 **({} if address else {"include_dashboard": False}))
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise EncoderError(
            f"cannot reach the Ray cluster at {address!r}: {exc}. Start one (`ray start --head`) and pass its "
            "address (ray://host:10001 or host:6379), or drop --ray-address for a local cluster"
        ) from exc
    try:
        yield
    finally:
        ray.shutdown()


@dataclass
class _RayTableJob(TableJob):
    engine: RayEngineConfig = RayEngineConfig()

    def _feed_items(self, items: list[WorkItem], writer: BackgroundWriter, summary: TableSummary) -> None:
        if not items:
            return
        failed: Counter = Counter()
        buffer = _CommitBuffer(writer, self.engine.commit_rows)
        started = time.perf_counter()
        try:
            for rows in self._dataset(items).iter_batches(batch_size=None, batch_format="pyarrow"):
                summary.startup_seconds = summary.startup_seconds or time.perf_counter() - started
                summary.model_seconds += float(pc.sum(rows.column(_MODEL_SECONDS)).as_py() or 0.0)
                self._take(chunk_result(rows.drop_columns([_MODEL_SECONDS])), buffer, summary, failed)
        except ChromaticError:
            raise
        except Exception as exc:  # noqa: BLE001 - Ray wraps errors raised in actors
            raise _engine_error(exc) from exc
        finally:
            buffer.flush()  # what came back is kept, even when the job stops here

    def _dataset(self, items: list[WorkItem]):
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the job reports committed rows through `progress`
        batch = self.config.batch_size
        dataset = ray.data.from_items(
            [{"segment_ids": list(item.segment_ids), "text": item.text} for item in items],
            override_num_blocks=max(1, -(-len(items) // batch)),
        )
        gpus = float(self.engine.gpus_per_actor)
        return dataset.map_batches(
            EncodeActor,
            fn_constructor_args=(type(self.encoder), self.encoder.config, self.record.fingerprint,
                                 self.store.uri, _travelling_options(self.store.options), self.record.modality,
                                 self.config.device if gpus == 0 else "cuda"),
            batch_size=batch,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(
                size=self.engine.actors, max_concurrent_calls_per_actor=2, enable_true_multi_threading=True
            ),
            num_cpus=self.engine.cpus_per_actor,
            num_gpus=gpus,
        )


class EncodeActor:
    """One Ray actor: the model loaded once, then prepare + encode for each batch it is given."""

    def __init__(self, encoder_cls: type[Encoder], encoder_config, fingerprint: str, store_uri: str,
                 options: StoreOptions, modality: str, device: str):
        self.encoder = encoder_cls(encoder_config, device=device)
        if self.encoder.fingerprint() != fingerprint:
            raise EncoderError(
                f"encoder {self.encoder.name!r} on this Ray worker has fingerprint {self.encoder.fingerprint()}, "
                f"the job claimed {fingerprint}: install the same code and weights (at the same path) on every "
                "worker"
            )
        self.context = PrepareContext(self.encoder, Store.open(store_uri, create=False, options=options))
        self.modality = modality
        # Two calls run at once (see _dataset): prepare overlaps, the forward (and the model's lazy
        # load, so it happens once) takes turns.
        self._model_turn = threading.Lock()
        self.size = 1
        for dim in self.encoder.shape:
            self.size *= int(dim)

    def __call__(self, batch: pa.Table) -> pa.Table:
        items = [WorkItem(tuple(ids), text) for ids, text in
                 zip(batch.column("segment_ids").to_pylist(), batch.column("text").to_pylist())]
        seconds: list[float] = []
        prepared = self.context.run(self.modality, items)
        with self._model_turn:
            rows = encode_chunk(self.encoder, prepared, self.size, seconds.append).rows
        model_seconds = [sum(seconds)] + [0.0] * (rows.num_rows - 1)
        return rows.append_column(_MODEL_SECONDS, pa.array(model_seconds, pa.float64()))


def _travelling_options(options: StoreOptions) -> StoreOptions:
    """The driver's options as resolved from its environment too: a worker's environment is not the
    driver's (credentials included: on a cluster with instance roles, give the driver none)."""
    return StoreOptions(tuple(options.resolved().items()), options.lease_ttl_s)


def chunk_result(rows: pa.Table) -> ChunkResult:
    """Rows built by encode_chunk, counted again: a null status is a vector, `error: …` a failure."""
    failures = [(sid, status.removeprefix(_ERROR_PREFIX))
                for sid, status in zip(rows.column("segment_id").to_pylist(), rows.column("status").to_pylist())
                if status is not None]
    return ChunkResult(rows, rows.num_rows - len(failures), failures)


class _CommitBuffer:
    """Rows gathered into commits of at least `rows` (each Lance commit costs object-store round trips)."""

    def __init__(self, writer: BackgroundWriter, rows: int):
        self.writer, self.rows = writer, rows
        self._tables: list[pa.Table] = []
        self._count = 0

    def put(self, rows: pa.Table) -> None:
        self._tables.append(rows)
        self._count += rows.num_rows
        if self._count >= self.rows:
            self.flush()

    def flush(self) -> None:
        if self._tables:
            self.writer.put(pa.concat_tables(self._tables))
            self._tables, self._count = [], 0


def _engine_error(exc: Exception) -> ChromaticError:
    """The ChromaticError an actor raised (Ray wraps it), or an EncoderError saying what failed."""
    seen = exc
    while seen is not None:
        cause = getattr(seen, "cause", None) or seen.__cause__
        if isinstance(cause, ChromaticError):
            return cause
        seen = cause
    return EncoderError(
        f"the Ray encode failed: {type(exc).__name__}: {exc}. Rows committed so far are kept; fix the cause "
        "and re-run: the job resumes"
    )
