"""The feature store: the only package that imports lancedb."""

from featurestore.errors import (
    ChromaticError,
    EncoderError,
    IngestError,
    ModelError,
    SchemaMismatchError,
    StoreError,
    TableNotFoundError,
    VersionConflictError,
    WriterLockedError,
)
from featurestore.store import Store, resolve_store_uri

__all__ = [
    "ChromaticError",
    "EncoderError",
    "IngestError",
    "ModelError",
    "SchemaMismatchError",
    "Store",
    "StoreError",
    "TableNotFoundError",
    "VersionConflictError",
    "WriterLockedError",
    "resolve_store_uri",
]
