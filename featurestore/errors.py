"""Typed errors. Every message says what was wrong and how to fix it."""

from __future__ import annotations


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


class SchemaMismatchError(StoreError):
    """Data or a registry row disagrees with the declared schema or shape."""


class VersionConflictError(StoreError):
    """An encoder version already exists with another config: versions are immutable."""


class WriterLockedError(StoreError):
    """Another process is writing this table."""


class IngestError(ChromaticError):
    """A whole input file cannot be ingested (e.g. a required column is missing)."""


class SearchError(ChromaticError):
    """A neighbour query cannot run: unknown segment, missing vector, bad filter or query input."""
