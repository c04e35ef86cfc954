"""The encode pipeline: prepare ahead of the model, encode in order, write behind it.

Three stages overlap so the model, the expensive part, rarely waits:

* spawned worker processes read a chunk of media from the store themselves
  (audio never crosses a pipe on its way in) and run `encoder.prepare`
  (decode, resample, tokenise), a few chunks ahead of the model;
* the main process runs `encode_batch` on each chunk as it comes ready (rows
  are keyed by segment, so chunk order does not matter);
* a writer thread upserts finished rows while the model works on the next chunk.

Workers take seconds to start (spawn, imports, the encoder's lazy loads); until
the first one has delivered, the main process prepares chunks itself. With
`workers=0` everything runs inline, which keeps tracebacks in one process.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from encoders.base import BadInput, Encoder, EncoderInput
from encoders.errors import EncoderError
from featurestore.errors import SchemaMismatchError
from featurestore.feature_table import MEDIA_COLUMNS, TEXT_COLUMN, rows_from_entries
from featurestore.lineage import INPUT_DIGEST
from featurestore.schemas import MEDIA
from featurestore.store import Store, sql_in


@dataclass(frozen=True)
class WorkItem:
    """One encoder input. A text item fans its vector out to every segment sharing the text."""

    segment_ids: tuple[str, ...]
    text: str | None = None


@dataclass
class PreparedChunk:
    items: list[WorkItem]
    prepared: list[Any]  # aligned with ok_index
    ok_index: list[int]
    failures: list[tuple[int, str]]  # (index into items, BadInput reason)


# -- prepare stage (runs in workers, or inline) -----------------------------------
class PrepareContext:
    """What one process needs to turn work items into prepared inputs."""

    def __init__(self, encoder: Encoder, store: Store):
        self.encoder = encoder
        self.store = store

    def run(self, modality: str, items: list[WorkItem]) -> PreparedChunk:
        inputs = self._inputs(modality, items)
        chunk = PreparedChunk(items, [], [], [])
        for index, (item, encoder_input) in enumerate(zip(items, inputs)):
            try:
                if isinstance(encoder_input, str):
                    raise BadInput(encoder_input)
                chunk.prepared.append(self.encoder.prepare(encoder_input, modality))
                chunk.ok_index.append(index)
            except BadInput as exc:
                chunk.failures.append((index, str(exc) or type(exc).__name__))
            except Exception as exc:  # noqa: BLE001 - re-raised with the segment named
                raise EncoderError(
                    f"encoder {self.encoder.name!r} crashed in prepare() on segment {item.segment_ids[0]!r} "
                    f"({modality}): {type(exc).__name__}: {exc}. Encoders mark bad data with BadInput, so "
                    "this is an encoder bug; rows written so far are kept and a re-run resumes after the fix"
                ) from exc
        return chunk

    def _inputs(self, modality: str, items: list[WorkItem]) -> list[EncoderInput | str]:
        if modality in TEXT_COLUMN:
            return [EncoderInput(item.segment_ids[0], text=item.text) for item in items]
        ids = [item.segment_ids[0] for item in items]
        found = read_media_inputs(self.store, modality, ids)
        return [found.get(sid, f"segment has {modality} but no row in the media table") for sid in ids]


def read_media_inputs(store: Store, modality: str, segment_ids: list[str]) -> dict[str, EncoderInput | str]:
    """Read one chunk of media: an EncoderInput per segment, or why there is none."""
    media = store.read(MEDIA, columns=MEDIA_COLUMNS[modality], where=sql_in("segment_id", segment_ids))
    ids = media.column("segment_id").to_pylist()
    if modality == "midi":
        blobs = media.column("midi").to_pylist()
        return {sid: EncoderInput(sid, midi=blob) if blob else "MIDI data is empty" for sid, blob in zip(ids, blobs)}
    waves = _list_column_arrays(media.column("audio"))
    rates = media.column("sample_rate").to_pylist()
    return {
        sid: EncoderInput(sid, audio=wave, sample_rate=rate) if wave is not None else "audio samples are missing"
        for sid, wave, rate in zip(ids, waves, rates)
    }


def _list_column_arrays(column: pa.ChunkedArray) -> list[np.ndarray | None]:
    """A list<float32> column as one numpy array per row, without a Python float per sample."""
    arr = column.combine_chunks()
    if len(arr) == 0:
        return []
    offsets = arr.offsets.to_numpy()  # absolute positions into arr.values, slices included
    values = arr.values.to_numpy(zero_copy_only=False)
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    # Copies, not views: Arrow buffers are read-only and an encoder may work in place.
    return [None if nulls[i] else values[offsets[i] : offsets[i + 1]].copy() for i in range(len(arr))]


_WORKER_CONTEXT: PrepareContext | None = None


def exit_with_parent(parent_pid: int, interval_s: float = 1.0) -> threading.Thread:
    """Exit this process soon after `parent_pid` dies (kill -9 included): a thread polls the parent.

    A worker blocked in prepare() (or still loading an encoder) would otherwise keep its memory
    (~700 MB for an audio model) long after the job is gone.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def _init_worker(
    encoder_cls: type[Encoder], encoder_config, store_uri: str, side_dir, options, parent_pid: int
) -> None:
    # The class travels by reference, so unpickling imports (and registers) its module here.
    global _WORKER_CONTEXT
    exit_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group; the main process alone decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_CONTEXT = PrepareContext(encoder_cls(encoder_config, device="cpu"), Store(store_uri, side_dir, options))


def _worker_started() -> bool:
    return _WORKER_CONTEXT is not None


def _prepare_in_worker(modality: str, items: list[WorkItem]) -> PreparedChunk:
    return _WORKER_CONTEXT.run(modality, items)


class Preparer:
    """Yields prepared chunks; with workers, keeps `prefetch` chunks in flight ahead of the model.

    `help_inline`: while the workers are still starting (spawn, imports and lazy
    loads take seconds), prepare chunks in this process instead of letting the model idle.
    """

    def __init__(
        self, encoder: Encoder, store: Store, workers: int, prefetch: int | None = None, help_inline: bool = True
    ):
        self.workers = workers
        self.prefetch = prefetch or max(2, 2 * workers)
        self.help_inline = help_inline
        self.wait_seconds = 0.0  # time the model stage spent waiting for inputs
        self.inline_chunks = 0
        self.worker_chunks = 0
        self._inline = PrepareContext(encoder, store)
        self._pool_args = (type(encoder), encoder.config, store.uri, store.side_dir, store.options, os.getpid())
        self._pool: ProcessPoolExecutor | None = None
        # A worker is "warm" once it has delivered a real chunk: spawning, imports and the
        # encoder's lazy loads take seconds. Until then each worker holds one chunk and
        # this process prepares the others, so the model does not idle through start-up.
        self._warm = not help_inline

    def _started_pool(self) -> ProcessPoolExecutor:
        # Started on first use: a re-run with nothing left to encode spawns nothing.
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),  # lancedb crashes forked children
                initializer=_init_worker,
                initargs=self._pool_args,
            )
        return self._pool

    def start(self) -> None:
        """Spawn every worker now (a pool spawns on submit), so start-up overlaps the job's set-up."""
        if self.workers > 0 and self._pool is None:
            pool = self._started_pool()
            for _ in range(self.workers):
                self._submit(pool, _worker_started)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "Preparer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def chunks(self, modality: str, chunks: Iterable[list[WorkItem]]) -> Iterator[PreparedChunk]:
        """Prepared chunks, roughly in order (each chunk is written on its own, so order is free)."""
        chunks = iter(chunks)
        if self.workers == 0:
            for items in chunks:
                yield self._inline_chunk(modality, items)
            return
        yield from self._pooled(modality, chunks)

    def _pooled(self, modality: str, chunks: Iterator[list[WorkItem]]) -> Iterator[PreparedChunk]:
        self.start()
        in_flight: list = []
        try:
            while True:
                self._warm = self._warm or any(f.done() for f in in_flight)
                room = (self.prefetch if self._warm else self.workers) - len(in_flight)
                in_flight += [self._submit(self._pool, _prepare_in_worker, modality, items)
                              for items in itertools.islice(chunks, max(0, room))]
                ready = next((f for f in in_flight if f.done()), None)
                if ready is None and not self._warm:
                    items = next(chunks, None)
                    if items is not None:
                        yield self._inline_chunk(modality, items)
                        continue
                if ready is None:
                    if not in_flight:
                        return
                    ready = in_flight[0]
                in_flight.remove(ready)
                yield self._result(ready)
        finally:
            for future in in_flight:
                future.cancel()

    def _inline_chunk(self, modality: str, items: list[WorkItem]) -> PreparedChunk:
        started = time.perf_counter()
        self.inline_chunks += 1
        try:
            return self._inline.run(modality, items)
        finally:
            self.wait_seconds += time.perf_counter() - started

    @staticmethod
    def _submit(pool: ProcessPoolExecutor, fn, *args):
        try:
            return pool.submit(fn, *args)
        except BrokenProcessPool as exc:
            raise _worker_died() from exc

    def _result(self, future) -> PreparedChunk:
        started = time.perf_counter()
        self.worker_chunks += 1
        try:
            return future.result()
        except BrokenProcessPool as exc:
            raise _worker_died() from exc
        finally:
            self.wait_seconds += time.perf_counter() - started


def _worker_died() -> EncoderError:
    return EncoderError(
        "a prepare worker process died or could not start (out of memory, a crash in native code, or an "
        "encoder module that fails to import); re-run with --workers 0 to see the failure in-process. "
        "Rows written so far are kept and the job resumes"
    )


# -- encode stage (main process) --------------------------------------------------
@dataclass(frozen=True)
class ChunkResult:
    rows: pa.Table
    encoded: int
    failures: list[tuple[str, str]]  # (segment_id, reason)


def encode_chunk(
    encoder: Encoder, chunk: PreparedChunk, size: int, on_model_seconds: Callable[[float], None]
) -> ChunkResult:
    """Run the model on a prepared chunk and build its feature rows (fanned out per segment)."""
    vectors: dict[int, np.ndarray] = {}
    reasons = dict(chunk.failures)
    if chunk.prepared:
        started = time.perf_counter()
        out = np.asarray(encoder.encode_batch(chunk.prepared), dtype=np.float32)
        on_model_seconds(time.perf_counter() - started)
        if out.shape[0] != len(chunk.prepared) or out[0].size != size:
            raise SchemaMismatchError(
                f"encoder {encoder.name!r} returned shape {out.shape} for {len(chunk.prepared)} items; "
                f"expected ({len(chunk.prepared)}, {', '.join(map(str, encoder.shape))}) as its `shape` declares"
            )
        for index, row in zip(chunk.ok_index, out.reshape(len(out), size)):
            if np.all(np.isfinite(row)):
                vectors[index] = row
            else:
                reasons[index] = "encoder produced non-finite values (NaN/inf)"
    entries, encoded, failures = [], 0, []
    for index, item in enumerate(chunk.items):
        status = None if index in vectors else f"error: {reasons[index]}"
        for sid in item.segment_ids:
            entries.append((sid, vectors.get(index), status))
            if status is None:
                encoded += 1
            else:
                failures.append((sid, reasons[index]))
    return ChunkResult(rows_from_entries(entries, size), encoded, failures)


# -- write stage (a thread of the main process) -----------------------------------
class BackgroundWriter:
    """Upserts rows on a thread so the model never waits on the store.

    Queued tables are coalesced into one upsert (fewer Lance commits); every
    `optimize_every` commits the table is compacted. The caller holds the
    table's writer lock, and a write error is raised back in the caller.
    """

    _STOP = object()

    def __init__(self, store: Store, table: str, optimize_every: int, on_written: Callable[[int], None],
                 input_digests: dict[str, str | None] | None = None):
        self.store, self.table = store, table
        self.input_digests = input_digests  # segment -> digest of the input its row is computed from
        self.optimize_every = optimize_every
        self.on_written = on_written
        self.commits = 0
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"write-{table}", daemon=True)
        self._thread.start()

    def put(self, rows: pa.Table) -> None:
        self._raise_error()
        if rows.num_rows:
            self._queue.put(rows)

    def close(self) -> None:
        """Write everything queued, then stop; raises the first write error."""
        self._queue.put(self._STOP)
        self._thread.join()
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            stop = batch[-1] is self._STOP
            tables = [t for t in batch if t is not self._STOP]
            if tables and self._error is None:
                self._write(pa.concat_tables(tables))

    def _write(self, rows: pa.Table) -> None:
        try:
            if self.input_digests is not None:
                digests = [self.input_digests.get(sid) for sid in rows.column("segment_id").to_pylist()]
                rows = rows.append_column(INPUT_DIGEST, pa.array(digests, pa.string()))
            self.store.upsert(self.table, rows)
            self.commits += 1
            if self.optimize_every and self.commits % self.optimize_every == 0:
                self.store.optimize(self.table)
            self.on_written(rows.num_rows)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._error = exc
