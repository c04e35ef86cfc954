"""`chromatic ingest`: upstream parquet files or folders + CSV manifests -> `segments` + `media`.

The job streams its inputs in batches sized by bytes (the real media parquet is
15 GB with multi-MB audio per row), validates each batch (featurestore/validate.py:
the bad-row rules are documented there), and writes `media` then `segments` per
batch under both tables' writer locks. Re-ingesting the same input changes
nothing and writes nothing: every row carries content digests
(featurestore/lineage.py), rows whose digest matches the stored one are counted
`unchanged` and skipped, and media is rewritten only when its own digest
changed. Other rows are upserted on `segment_id`, and ids repeated within one
run are rejected, so the store never holds a duplicate key. A store written
before digests existed gets the new columns (null) and each row is rewritten
once, with its digests, by the next ingest.

Media for ids the store has never seen is appended (Lance `add`) rather than
merged (in benchmarks/bench_ingest.py merge_insert of multi-MB blobs took ~1.8x
as long, with more memory); the writer locks guarantee nobody else inserts those
ids meanwhile, and ids already in `media` still go through the upsert.

Memory: about the interpreter and libraries (~220 MB), a few times `batch_bytes`,
Lance's metadata cache (capped in store.py) and, unavoidably, about twice the
input's largest parquet page of audio: the parquet reader decompresses whole
pages, and pyarrow's default writer puts a whole row group's blobs in one page.

Every input row ends up in exactly one of: ingested (new), updated, rejected
(with a reason, in the rejects file next to the store). A kept segment that
lost its audio or MIDI gets a line in the rejects file too (with `dropped`: the
modality), and the summary names the first few.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore.errors import IngestError
from featurestore.ingest_folder import FolderInput, find_manifest, folder_batches, read_manifest
from featurestore.lineage import DIGEST_COLUMN, ROW_DIGEST
from featurestore.schemas import KEY, MEDIA, MEDIA_SCHEMA, SEGMENTS, SEGMENTS_SCHEMA
from featurestore.store import Store
from featurestore.validate import (
    REQUIRED_COLUMNS,
    UPSTREAM_COLUMNS,
    ValidatedBatch,
    missing_required,
    validate_batch,
    wrong_blob_types,
)

DEFAULT_BATCH_BYTES = 8 * 2**20
_MAX_BATCH_ROWS = 8192  # metadata-only files: keep Python-side row work per batch modest
DROPPED_EXAMPLES = 5  # dropped modalities named in the summary; all of them are in the rejects file

ProgressFn = Callable[[int, int], None]  # (rows done, rows total)


@dataclass(frozen=True)
class IngestConfig:
    batch_bytes: int = DEFAULT_BATCH_BYTES  # media bytes per batch; bounds memory
    manifest: Path | None = None  # CSV for folder inputs (default: <folder>/manifest.csv)
    source: str | None = None  # stored in segments.source; default: the input's file name


@dataclass
class IngestSummary:
    rows_read: int = 0
    ingested: int = 0  # new segments
    updated: int = 0  # segments that already existed with other content and were overwritten
    unchanged: int = 0  # segments already stored with the same content: nothing written
    media_written: int = 0  # media rows written (new or changed audio/MIDI)
    optimized: list = field(default_factory=list)  # OptimizeStats of the tables this run wrote
    rejected: Counter = field(default_factory=Counter)  # reason -> rows
    modality_dropped: Counter = field(default_factory=Counter)  # "audio: <reason>" -> rows
    dropped_examples: list[dict] = field(default_factory=list)  # the first few dropped modalities, with segment ids
    rejects_path: Path | str | None = None  # one JSON line per rejected row or dropped modality; None if none
    seconds: float = 0.0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def to_dict(self) -> dict:
        return {
            "rows_read": self.rows_read, "ingested": self.ingested, "updated": self.updated,
            "unchanged": self.unchanged, "media_written": self.media_written,
            "optimized": [o.to_dict() for o in self.optimized],
            "rejected_total": self.rejected_total, "rejected": dict(self.rejected),
            "modality_dropped": dict(self.modality_dropped), "dropped_examples": list(self.dropped_examples),
            "rejects_path": str(self.rejects_path) if self.rejects_path else None,
            "seconds": round(self.seconds, 3),
        }


# -- inputs ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Input:
    path: Path
    total_rows: int
    batches: Callable[[], Iterator[pa.RecordBatch]]


def _parquet_input(path: Path, batch_bytes: int) -> _Input:
    try:
        with pq.ParquetFile(path) as parquet:
            return _checked_parquet_input(path, parquet, batch_bytes)
    except (pa.ArrowException, OSError) as exc:  # not parquet, truncated, unreadable
        raise IngestError(f"cannot read {path} as parquet: {exc}") from exc


def _checked_parquet_input(path: Path, parquet: pq.ParquetFile, batch_bytes: int) -> _Input:
    """Fail the file if it lacks a required column or holds blobs that are not binary."""
    names = parquet.schema_arrow.names
    missing = missing_required(names)
    if missing:
        raise IngestError(
            f"{path} lacks required column(s) {', '.join(missing)}; it has: {', '.join(names)}. "
            f"Required: {', '.join(REQUIRED_COLUMNS)}"
        )
    wrong = wrong_blob_types(parquet.schema_arrow)
    if wrong:
        raise IngestError(
            f"{path}: {', '.join(wrong)} must be binary (raw little-endian float32 audio / MIDI file bytes)"
        )
    columns = [c for c in UPSTREAM_COLUMNS if c in names]  # other columns are never read
    rows = _rows_per_batch(parquet, columns, batch_bytes)
    return _Input(path, parquet.metadata.num_rows, lambda: _parquet_batches(path, columns, rows))


def _rows_per_batch(parquet: pq.ParquetFile, columns: list[str], batch_bytes: int) -> int:
    """Rows per batch from the widest row group's bytes per row over the columns read."""
    meta, widest = parquet.metadata, 1.0
    indices = [i for i in range(meta.num_columns) if meta.schema.column(i).path.split(".")[0] in columns]
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        if group.num_rows:
            size = sum(group.column(i).total_uncompressed_size for i in indices)
            widest = max(widest, size / group.num_rows)
    return max(1, min(_MAX_BATCH_ROWS, int(batch_bytes // widest)))


def _parquet_batches(path: Path, columns: list[str], rows: int) -> Iterator[pa.RecordBatch]:
    # pre_buffer=False + a small read buffer stream pages instead of loading whole row groups.
    parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    try:
        yield from parquet.iter_batches(batch_size=rows, columns=columns, use_threads=False)
    finally:
        parquet.close()


def _folder_input(folder: Path, manifest: Path | None, batch_bytes: int) -> list[_Input]:
    found = find_manifest(folder, manifest)
    if found is not None:
        source = FolderInput(folder, found)
        count = len(read_manifest(found))
        return [_Input(folder, count, lambda: folder_batches(source, batch_bytes))]
    parquets = sorted(folder.glob("*.parquet"))
    if not parquets:
        raise IngestError(
            f"folder {folder} has no manifest.csv and no .parquet files; add a manifest.csv "
            "(segment_id, song_id, colour, audio_file, midi_file, ...) or pass --manifest FILE"
        )
    return [_parquet_input(p, batch_bytes) for p in parquets]


def plan_inputs(paths: list[Path], config: IngestConfig) -> list[_Input]:
    """Check every input up front so a bad file fails before anything is written."""
    if config.batch_bytes <= 0:
        raise IngestError(f"batch_bytes must be positive, got {config.batch_bytes}")
    inputs: list[_Input] = []
    for path in map(Path, paths):
        if not path.exists():
            raise IngestError(f"{path} does not exist; pass a .parquet file or a folder with a manifest.csv")
        if path.is_dir():
            inputs.extend(_folder_input(path, config.manifest, config.batch_bytes))
        elif path.is_file() and path.suffix.lower() == ".parquet":
            inputs.append(_parquet_input(path, config.batch_bytes))
        else:
            raise IngestError(
                f"cannot ingest {path}: expected a .parquet file (upstream layout) "
                "or a folder with audio/MIDI files and a manifest.csv"
            )
    if not inputs:
        raise IngestError("nothing to ingest: pass at least one parquet file or folder")
    return inputs


# -- run ------------------------------------------------------------------------
class _RejectsFile:
    """JSON lines, one per rejected row or dropped modality (no blobs); created on the first."""

    def __init__(self, path: Path):
        self.path = path
        self.written = 0
        self._handle = None

    def write(self, batch: ValidatedBatch, source: Path) -> None:
        lines = [{"segment_id": reject.segment_id, "source": str(source), "row": reject.row,
                  "reason": reject.reason, "detail": reject.detail} for reject in batch.rejects]
        lines += [{**drop, "source": str(source)} for drop in dropped_modalities(batch.segments)]
        if not lines:
            return
        if self._handle is None:
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.writelines(json.dumps(line) + "\n" for line in lines)
        self._handle.flush()  # a crash later in the run still leaves the rejects so far
        self.written += len(lines)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def dropped_modalities(segments: pa.Table) -> list[dict]:
    """{"segment_id", "dropped": modality, "status"} for each modality a kept segment of the batch lost."""
    out = []
    for modality in ("audio", "midi"):
        column = f"{modality}_status"
        lost = segments.filter(pc.is_valid(segments.column(column)))
        out += [{"segment_id": sid, "dropped": modality, "status": status}
                for sid, status in zip(lost.column(KEY).to_pylist(), lost.column(column).to_pylist())]
    return out


def _rejects_path(store: Store, inputs: list[_Input]) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    stem = inputs[0].path.stem
    if len(inputs) > 1:
        stem += f"-and-{len(inputs) - 1}-more"
    return store.side_path("rejects", f"{stamp}-{stem}.jsonl")


_MEDIA_DIGESTS = (DIGEST_COLUMN["audio"], DIGEST_COLUMN["midi"])


class _BatchWriter:
    """Writes changed media then changed segments, so a crash never leaves a segment without its media row.

    What is stored is read once, under the writer locks, so it stays true for the run.
    """

    def __init__(self, store: Store):
        self.store = store
        self.media_keys = store.keys(MEDIA)
        stored = store.read(SEGMENTS, [KEY, ROW_DIGEST, *_MEDIA_DIGESTS]).to_pylist()
        self.stored = {r[KEY]: (r[ROW_DIGEST], tuple(r[c] for c in _MEDIA_DIGESTS)) for r in stored}
        self.segments_written = self.media_written = 0

    def write(self, batch: ValidatedBatch) -> tuple[int, int, int]:
        """-> (inserted, updated, unchanged) segments."""
        rows = batch.segments.select([KEY, ROW_DIGEST, *_MEDIA_DIGESTS]).to_pylist()
        known = [self.stored.get(r[KEY]) for r in rows]
        changed = [k is None or k[0] is None or k[0] != r[ROW_DIGEST] for r, k in zip(rows, known)]
        new_media = [k is None or k[1] != tuple(r[c] for c in _MEDIA_DIGESTS) for r, k in zip(rows, known)]
        if any(new_media):
            self._write_media(batch.media.filter(pa.array(new_media, pa.bool_())))
        inserted, updated = self.store.upsert(SEGMENTS, batch.segments.filter(pa.array(changed, pa.bool_())))
        for r, is_changed in zip(rows, changed):
            if is_changed:
                self.stored[r[KEY]] = (r[ROW_DIGEST], tuple(r[c] for c in _MEDIA_DIGESTS))
        self.segments_written += inserted + updated
        return inserted, updated, len(rows) - sum(changed)

    def _write_media(self, media: pa.Table) -> None:
        self.media_written += media.num_rows
        is_new = [sid not in self.media_keys for sid in media.column(KEY).to_pylist()]
        if all(is_new):
            self._append(media)
        elif not any(is_new):
            self.store.upsert(MEDIA, media)
        else:
            mask = pa.array(is_new, pa.bool_())
            self._append(media.filter(mask))
            self.store.upsert(MEDIA, media.filter(pc.invert(mask)))
        self.media_keys.update(sid for sid, new in zip(media.column(KEY).to_pylist(), is_new) if new)

    def _append(self, media: pa.Table) -> None:
        if media.num_rows:
            self.store.table(MEDIA).add(media.cast(MEDIA_SCHEMA))


class _IngestRun:
    def __init__(self, store: Store, config: IngestConfig, inputs: list[_Input], progress: ProgressFn | None):
        self.store, self.config, self.inputs, self.progress = store, config, inputs, progress
        self.summary = IngestSummary()
        self.rejects = _RejectsFile(_rejects_path(store, inputs))
        self.seen_ids: set[str] = set()
        self.ingested_at = datetime.now(timezone.utc)
        self.total_rows = sum(i.total_rows for i in inputs)

    def run(self) -> IngestSummary:
        started = time.monotonic()
        self.store.ensure_table(MEDIA)
        self.store.ensure_table(SEGMENTS)
        try:
            with self.store.writer(MEDIA), self.store.writer(SEGMENTS):
                self.store.add_missing_columns(SEGMENTS, SEGMENTS_SCHEMA)  # a store from before digests
                writer = _BatchWriter(self.store)
                for source in self.inputs:
                    self._ingest(source, writer)
                self._optimize(writer)
        finally:
            self.rejects.close()
        if self.rejects.written:  # at the store's URI: an object store's is uploaded from the local cache
            published = self.store.publish(self.rejects.path, "rejects", self.rejects.path.name)
            self.summary.rejects_path = self.rejects.path if self.store.is_local else published
        self.summary.seconds = time.monotonic() - started
        return self.summary

    def _ingest(self, source: _Input, writer: _BatchWriter) -> None:
        label = self.config.source or source.path.name
        row = 0
        for batch in source.batches():
            validated = validate_batch(batch, row, self.seen_ids, label, self.ingested_at)
            row += batch.num_rows
            self.rejects.write(validated, source.path)
            counts = writer.write(validated)
            self._count(batch.num_rows, validated, *counts)

    def _optimize(self, writer: _BatchWriter) -> None:
        """Per-batch commits leave small fragments and old versions behind: tidy what this run wrote."""
        self.summary.media_written = writer.media_written
        if writer.segments_written:
            self.summary.optimized.append(self.store.optimize(SEGMENTS))
        if writer.media_written:
            # Compacting blobs rewrites them; old versions are removed after the retention period.
            self.summary.optimized.append(self.store.optimize(MEDIA, compact=False))

    def _count(self, rows: int, validated: ValidatedBatch, inserted: int, updated: int, unchanged: int) -> None:
        summary = self.summary
        summary.rows_read += rows
        summary.ingested += inserted
        summary.updated += updated
        summary.unchanged += unchanged
        summary.rejected.update(r.reason for r in validated.rejects)
        summary.modality_dropped.update(validated.dropped)
        room = DROPPED_EXAMPLES - len(summary.dropped_examples)
        if room > 0 and validated.dropped:
            summary.dropped_examples.extend(dropped_modalities(validated.segments)[:room])
        if self.progress is not None:
            self.progress(summary.rows_read, self.total_rows)


def ingest_paths(
    store: Store, paths: list[Path], config: IngestConfig = IngestConfig(), progress: ProgressFn | None = None
) -> IngestSummary:
    """Ingest parquet files and/or folders (+ CSV manifest) into `segments` and `media`.

    Every input is checked before anything is written: a file missing a required
    column raises IngestError naming the column(s). `progress(done, total)` is
    called after each batch.
    """
    inputs = plan_inputs(list(paths), config)
    return _IngestRun(store, config, inputs, progress).run()
