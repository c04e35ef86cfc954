"""Typed errors. Every message says what was wrong and how to fix it."""

from __future__ import annotations

import re


class ChromaticError(Exception):
    """Base class of every error this project raises on purpose."""


class StoreError(ChromaticError):
    """The store cannot be opened or written."""


class TableNotFoundError(StoreError):
    def __init__(self, name: str, existing: list[str], hint: str = ""):
        self.name = name
        self.existing = existing
        listing = ", ".join(sorted(existing)) or "(none)"
        msg = f"table {name!r} does not exist in this store; existing tables: {listing}"
        super().__init__(msg + (f". {hint}" if hint else ""))


class InputNameError(StoreError):
    """A model input name that is not `MODALITY` or `MODALITY.TAG`, or inputs that cannot be named apart."""


class SchemaMismatchError(StoreError):
    """Data or a registry row disagrees with the declared schema or shape."""


class VersionConflictError(StoreError):
    """An encoder version already exists with another config: versions are immutable."""


class WriterLockedError(StoreError):
    """Another process is writing this table."""


class StoreDamagedError(StoreError):
    """Lance could not read (or write) a table's files: truncated, deleted or otherwise damaged."""

    def __init__(self, table: str | None, cause: str):
        self.table = table
        self.cause = cause
        what = f"table {table!r}" if table and "," not in table else f"tables {table}" if table else (
            "a table of the store")
        super().__init__(
            f"{what} cannot be read: {cause}. Its files may be damaged or missing: run `chromatic doctor` "
            "(with the same --store) to check every table and see how to fix each problem"
        )

    def __reduce__(self):
        return type(self), (self.table, self.cause)


_LANCE_MARKERS = ("LanceError", "lance error")
_SOURCE_LOCATION = re.compile(r",?\s*\S+\.rs:\d+:\d+\s*$")
_TABLE_IN_PATH = re.compile(r"([A-Za-z0-9_\-.]+)\.lance/")


def is_lance_error(exc: BaseException) -> bool:
    return isinstance(exc, (OSError, RuntimeError, ValueError)) and any(m in str(exc) for m in _LANCE_MARKERS)


def damage_error(exc: BaseException, table: str | None = None) -> StoreDamagedError | None:
    """A Lance error as StoreDamagedError naming the table (given, or found in a file path); else None."""
    if not is_lance_error(exc):
        return None
    text = str(exc)
    found = _TABLE_IN_PATH.search(text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = (lines[0] if lines else type(exc).__name__).removeprefix("lance error: ")
    cause = _SOURCE_LOCATION.sub("", cause).rstrip(", ")  # the Rust source line means nothing to a user
    return StoreDamagedError(table or (found.group(1) if found else None), cause)


class IngestError(ChromaticError):
    """A whole input file cannot be ingested (e.g. a required column is missing)."""


class SearchError(ChromaticError):
    """A neighbour query cannot run: unknown segment, missing vector, bad filter or query input."""
