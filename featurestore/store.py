"""The store: a LanceDB database plus side files (locks, rejects, model runs) at the same URI.

A small API in the spirit of lancedb itself: open, read, upsert, version.
Nothing outside `featurestore/` touches lancedb. lancedb is imported on first
use, not on import: importing it takes ~1.5 s, and read-only paths such as
neighbour search read local tables through `dataset()` (pylance) alone.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path

import pyarrow as pa

from featurestore.errors import StoreError, TableNotFoundError, damage_error
from featurestore.lease import S3Lease
from featurestore.lock import table_writer_lock
from featurestore.objectstore import (LOCKS_DIR, SIDE_DIR, LocalFiles, S3Files, StoreOptions, files_at, is_local,
                                      local_path)
from featurestore.schemas import KEY, SYSTEM_KEYS, SYSTEM_SCHEMAS

DEFAULT_STORE = "./store"
STORE_ENV = "CHROMATIC_STORE"
_SCAN_ALL = None  # limit(None): lancedb's empty query otherwise stops at 10 rows
# Lance caches the metadata of every table version it touches, up to 1 GiB by default; a long
# ingest/encode job commits thousands of versions, and RSS grew ~0.4 MB per commit without a cap.
METADATA_CACHE_BYTES = 64 * 2**20
# Old versions are kept this long after they stop being the latest: lancedb's own default, long
# enough that no reader still holds one. Versions a model run tagged are kept whatever their age.
DEFAULT_RETENTION = timedelta(days=7)
_NEVER = timedelta(days=365 * 100)  # "prune nothing" for lancedb's optimize (compaction and indexes only)
# Compacting blob tables into fragments of ~1M rows would rewrite every media byte; aim at this size instead.
_BLOB_FRAGMENT_BYTES = 256 * 2**20
# Kept in the table's own Lance config, so it follows every later version and dies with the table:
# a table deleted and re-created under the same name gets another id.
IDENTITY_KEY = "chromatic.table_id"


@dataclass(frozen=True)
class OptimizeStats:
    table: str
    versions_before: int
    versions_after: int
    bytes_removed: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def resolve_store_uri(uri: str | os.PathLike | None = None) -> str:
    """`--store`, else `$CHROMATIC_STORE`, else `./store`."""
    if uri:
        return str(uri)
    return os.environ.get(STORE_ENV) or DEFAULT_STORE


@contextmanager
def lance_io(table: str | None):
    """Turn a Lance I/O error (truncated or missing files) into StoreDamagedError naming `table`."""
    try:
        yield
    except (OSError, RuntimeError, ValueError) as exc:
        damaged = damage_error(exc, table)
        if damaged is None:
            raise
        raise damaged from exc


class Store:
    """A feature store at a local path or an object-store URI (`s3://…`).

    Lance I/O errors of the methods below name their table (StoreDamagedError).

    `side_dir` is local scratch: for a local store the side files themselves; for
    an object store only a cache and staging area (`CHROMATIC_STATE_DIR`), never
    the home of anything another machine needs: that is `files` (at the URI).
    """

    def __init__(self, uri: str, side_dir: Path, options: StoreOptions = StoreOptions()):
        self.uri = uri
        self.side_dir = side_dir
        self.options = options
        self.is_local = is_local(uri)
        self._leases: dict[str, S3Lease] = {}
        self._connection = None
        if not self.is_local:  # a bad object-store URI should fail at open, not at first read
            self._db  # noqa: B018

    @property
    def _db(self):
        if self._connection is None:
            import lancedb

            try:
                session = lancedb.Session(metadata_cache_size_bytes=METADATA_CACHE_BYTES)
                storage = None if self.is_local else self.options.resolved()
                self._connection = lancedb.connect(self.uri, session=session, storage_options=storage)
            except Exception as exc:  # lancedb raises plain errors for bad URIs
                raise StoreError(f"cannot open store at {self.uri!r}: {exc}. Check the --store path/URI.") from exc
        return self._connection

    @cached_property
    def files(self) -> LocalFiles | S3Files:
        """The store's side files, at its URI (built on first use: an S3 client is not free)."""
        return files_at(self.side_dir if self.is_local else f"{self.uri.rstrip('/')}/{SIDE_DIR}", self.options)

    @classmethod
    def open(
        cls, uri: str | os.PathLike | None = None, create: bool = True, options: StoreOptions = StoreOptions()
    ) -> "Store":
        uri = resolve_store_uri(uri)
        if is_local(uri):
            path = local_path(uri)
            if not path.exists():
                if not create:
                    raise StoreError(f"no store at {path}; run `chromatic ingest` or `chromatic demo` first")
                path.mkdir(parents=True)
            return cls(str(path), path / SIDE_DIR, options)
        digest = hashlib.sha1(uri.encode()).hexdigest()[:12]
        return cls(uri, Path(os.environ.get("CHROMATIC_STATE_DIR", ".chromatic")) / digest, options)

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    # -- tables ---------------------------------------------------------------
    def table_names(self) -> list[str]:
        if self.is_local:  # lancedb keeps a local table as the directory <name>.lance
            root = Path(self.uri)
            found = root.iterdir() if root.is_dir() else ()
            return sorted(p.name.removesuffix(".lance") for p in found if p.is_dir() and p.name.endswith(".lance"))
        names: list[str] = []
        token = None
        while True:
            page = self._db.list_tables(page_token=token)
            names.extend(page.tables)
            token = page.page_token
            if not token:
                return sorted(names)

    def has_table(self, name: str) -> bool:
        return name in self.table_names()

    def table(self, name: str, version: int | None = None):
        """Open a table (optionally at a Lance version); TableNotFoundError lists what exists."""
        if not self.has_table(name):
            hint = "run `chromatic ingest` first" if name in SYSTEM_SCHEMAS else "see `chromatic versions`"
            raise TableNotFoundError(name, self.table_names(), hint)
        with lance_io(name):
            tbl = self._db.open_table(name)
            if version is not None:
                tbl.checkout(version)
        return tbl

    def dataset(self, name: str):
        """The Lance dataset of table `name` at its latest version, for read-only scans and vector queries.

        Local stores open it with pylance directly (lancedb keeps each table at
        `<store>/<name>.lance`), which spares a read-only process the lancedb import.
        """
        if not self.is_local:
            return self.table(name).to_lance()
        path = Path(self.uri) / f"{name}.lance"
        if not path.is_dir():
            hint = "run `chromatic ingest` first" if name in SYSTEM_SCHEMAS else "see `chromatic versions`"
            raise TableNotFoundError(name, self.table_names(), hint)
        import lance

        return lance.dataset(str(path))

    def ensure_table(self, name: str, schema: pa.Schema | None = None):
        """Open `name`, creating it empty with `schema` (system tables know theirs)."""
        schema = schema if schema is not None else SYSTEM_SCHEMAS.get(name)
        if schema is None:
            raise StoreError(f"no schema given for new table {name!r}")
        if self.has_table(name):  # an older store's table may lack new columns: see add_missing_columns
            return self._db.open_table(name)
        table = self._db.create_table(name, schema=schema, exist_ok=True)
        self.identity(name, assign=True)
        return table

    def drop_table(self, name: str) -> None:
        self._db.drop_table(name)

    def version(self, name: str) -> int:
        with lance_io(name):
            return int(self.table(name).version)

    def count(self, name: str, where: str | None = None) -> int:
        if not self.has_table(name):
            return 0
        with lance_io(name):
            return int(self.table(name).count_rows(where))

    # -- reads ----------------------------------------------------------------
    def read(
        self,
        name: str,
        columns: list[str] | None = None,
        where: str | None = None,
        version: int | None = None,
    ) -> pa.Table:
        """Read a whole table (or the given columns/rows) as Arrow."""
        with lance_io(name):
            query = self.table(name, version).search()
            if where:
                query = query.where(where)
            if columns:
                query = query.select(columns)
            return query.limit(_SCAN_ALL).to_arrow()

    def scan(
        self, name: str, columns: list[str] | None = None, where: str | None = None, batch_size: int = 256
    ) -> Iterator[pa.RecordBatch]:
        """Stream record batches: memory stays bounded for blob tables like `media`."""
        with lance_io(name):
            query = self.table(name).search()
            if where:
                query = query.where(where)
            if columns:
                query = query.select(columns)
            yield from query.limit(_SCAN_ALL).to_batches(batch_size)

    def keys(self, name: str, where: str | None = None, key: str = KEY) -> set[str]:
        if not self.has_table(name):
            return set()
        return set(self.read(name, [key], where).column(key).to_pylist())

    # -- writes ---------------------------------------------------------------
    def upsert(self, name: str, data: pa.Table, key: str | None = None) -> tuple[int, int]:
        """Insert-or-update on the key; returns (inserted, updated). Never duplicates keys.

        Callers that may run concurrently hold `writer(name)` around this.
        """
        key = key or SYSTEM_KEYS.get(name, KEY)
        if name in self._leases:
            self._leases[name].check()
        if data.num_rows == 0:
            return 0, 0
        tbl = self.table(name)
        for column in tbl.schema:  # nullable columns the writer does not know of (e.g. added later) stay null
            if column.name not in data.column_names and column.nullable:
                data = data.append_column(column.name, pa.nulls(data.num_rows, column.type))
        data = data.select(tbl.schema.names).cast(tbl.schema)
        with lance_io(name):
            result = (
                tbl.merge_insert(key)
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(data, on_bad_vectors="null")
            )
        return int(result.num_inserted_rows), int(result.num_updated_rows)

    def delete(self, name: str, where: str) -> None:
        self.table(name).delete(where)

    def optimize(
        self, name: str, older_than: timedelta | None = DEFAULT_RETENTION, compact: bool = True
    ) -> OptimizeStats:
        """Compact fragments (many small upserts slow every scan) and remove versions older than `older_than`.

        Tagged versions (a model run's, see `tag_version`) are never removed. `older_than=None` keeps
        every version. Blob tables are compacted towards ~256 MB fragments, not ~1M rows.
        """
        with lance_io(name):
            return self._optimize(name, older_than, compact)

    def _optimize(self, name: str, older_than: timedelta | None, compact: bool) -> OptimizeStats:
        tbl = self.table(name)
        before = len(tbl.list_versions())
        if compact and self._is_blob_table(tbl):
            tbl.to_lance().optimize.compact_files(target_rows_per_fragment=self._blob_fragment_rows(tbl))
        elif compact:
            tbl.optimize(cleanup_older_than=_NEVER)  # compaction + index upkeep; pruning is done below
        removed = 0
        if older_than is not None:
            stats = tbl.to_lance().cleanup_old_versions(older_than, error_if_tagged_old_versions=False)
            removed = int(stats.bytes_removed)
        return OptimizeStats(name, before, len(self.table(name).list_versions()), removed)

    @staticmethod
    def _is_blob_table(tbl) -> bool:
        return any(pa.types.is_large_list(f.type) or pa.types.is_large_binary(f.type) for f in tbl.schema)

    @staticmethod
    def _blob_fragment_rows(tbl) -> int:
        meta = tbl.list_versions()[-1]["metadata"]
        rows, size = int(meta.get("total_rows", 0)), int(meta.get("total_files_size", 0))
        return max(1, int(_BLOB_FRAGMENT_BYTES / max(1.0, size / max(1, rows))))

    def add_missing_columns(self, name: str, schema: pa.Schema) -> list[str]:
        """Add `schema`'s fields the table lacks, as nulls (upgrades a store written by older code)."""
        tbl = self.table(name)
        missing = [f for f in schema if f.name not in tbl.schema.names]
        if missing:
            tbl.add_columns([f.with_nullable(True) for f in missing])
        return [f.name for f in missing]

    # -- tags: versions pinned by model runs ------------------------------------
    def tag_version(self, name: str, tag: str, version: int) -> None:
        tags = self.table(name).tags
        if tag in tags.list():
            tags.update(tag, int(version))
        else:
            tags.create(tag, int(version))

    def delete_tag(self, name: str, tag: str) -> None:
        tags = self.table(name).tags
        if tag in tags.list():
            tags.delete(tag)

    def identity(self, name: str, assign: bool = False) -> str | None:
        """The table's id (a uuid set when it was created); `assign` gives one to a table from older code."""
        dataset = self.table(name).to_lance()
        found = dataset.config().get(IDENTITY_KEY)
        if found is None and assign:
            found = uuid.uuid4().hex
            dataset.update_config({IDENTITY_KEY: found})
        return found

    def tags(self, name: str) -> dict[str, int]:
        return {tag: int(info["version"]) for tag, info in self.table(name).tags.list().items()}

    @contextmanager
    def writer(self, name: str, timeout_s: float = 0.0):
        """Hold the single-writer lock of table `name` (WriterLockedError if taken).

        Local stores use an flock; object stores a lease in the bucket (featurestore/lease.py).
        """
        if self.is_local:
            with table_writer_lock(self.side_dir / LOCKS_DIR, name, timeout_s):
                yield
            return
        lease = S3Lease(self.files.client, self.files.bucket, self.files.key(LOCKS_DIR, f"{name}.lease"), name,
                        self.options.lease_ttl_s, timeout_s)
        with lease:
            self._leases[name] = lease
            try:
                yield
            finally:
                del self._leases[name]

    # -- side files -----------------------------------------------------------
    def side_path(self, *parts: str) -> Path:
        """A local path for side files: in the store when it is local, else in its local cache.

        What other machines must see goes to `files` (e.g. `publish`).
        """
        path = self.side_dir.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def publish(self, local: Path, *parts: str) -> str:
        """Put a local file or directory at `parts` under the store's side files; returns where it is."""
        return self.files.upload(local, *parts)


def sql_quote(value: str) -> str:
    """Quote a string literal for a Lance SQL predicate."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_in(column: str, values) -> str:
    return f"{column} IN ({', '.join(sql_quote(v) for v in values)})"
