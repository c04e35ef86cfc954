"""The encoder layer's errors; the base class lives with the store, below every layer."""

from __future__ import annotations

from featurestore.errors import ChromaticError


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


class DeviceError(ChromaticError, ValueError):
    """A `--device` that is not a known device name, or that this machine does not have."""
