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


class SynthError(ChromaticError):
    """Bad synthetic-corpus settings (song count, segment lengths, sample rate)."""


class EncoderError(ChromaticError):
    """Unknown encoder, bad encoder parameters, or weights that cannot be loaded."""


class BadInputError(EncoderError):
    """A strict encode job met a segment whose input cannot be encoded."""

    def __init__(self, table: str, segment_id: str, reason: str):
        self.table = table
        self.segment_id = segment_id
        self.reason = reason
        super().__init__(
            f"{table}: segment {segment_id!r} cannot be encoded: {reason}. --strict stops at the first bad "
            "input; fix or re-ingest it, or re-run without --strict to record it as an error row and go on "
            "(rows already written are kept and the job resumes)"
        )

    def __reduce__(self):
        return type(self), (self.table, self.segment_id, self.reason)


class ModelError(ChromaticError):
    """A trained model run is missing, incomplete or inconsistent with the store."""


class SearchError(ChromaticError):
    """A neighbour query cannot run: unknown segment, missing vector, bad filter or query input."""
