"""The feature store: the only package that imports lancedb.

`Store` is imported lazily so that code needing only the errors or the
taxonomy (e.g. the ONNX scorer) does not pay for importing lancedb.
"""

from featurestore.errors import (
    ChromaticError,
    IngestError,
    SchemaMismatchError,
    StoreError,
    TableNotFoundError,
    VersionConflictError,
    WriterLockedError,
)
from featurestore.objectstore import StoreOptions


def __getattr__(name: str):
    if name in ("Store", "resolve_store_uri"):
        from featurestore import store

        return getattr(store, name)
    raise AttributeError(f"module 'featurestore' has no attribute {name!r}")


__all__ = [
    "ChromaticError",
    "IngestError",
    "SchemaMismatchError",
    "Store",
    "StoreError",
    "StoreOptions",
    "TableNotFoundError",
    "VersionConflictError",
    "WriterLockedError",
    "resolve_store_uri",
]
