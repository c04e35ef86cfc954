"""The model layer's errors; the base class lives with the store, below every layer."""

from __future__ import annotations

from featurestore.errors import ChromaticError


class ModelError(ChromaticError):
    """A trained model run is missing, incomplete or inconsistent with the store."""
