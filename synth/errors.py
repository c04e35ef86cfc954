"""The synthetic corpus's errors; the base class lives with the store, below every layer."""

from __future__ import annotations

from featurestore.errors import ChromaticError


class SynthError(ChromaticError):
    """Bad synthetic-corpus settings (song count, segment lengths, sample rate)."""
