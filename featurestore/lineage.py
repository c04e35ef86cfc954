"""Content digests: what a segment's inputs are, so nothing downstream goes stale unseen.

Ingest stores one digest per modality in `segments` (`audio_digest`,
`midi_digest`, `lyrics_digest`, `concept_digest`; null when the modality is
absent) and a `row_digest` of the whole row (labels, text, media digests), so a
re-ingest writes only rows whose content changed. Feature rows record the digest
of the input they were computed from (featurestore/schemas.py, `input_digest`).

Digests are BLAKE2b-128 in hex: collisions are not a practical concern for this,
and it hashes at memory speed (a 290 MB corpus adds well under a second).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

DIGEST_COLUMN = {
    "audio": "audio_digest", "midi": "midi_digest", "lyrics": "lyrics_digest", "concept": "concept_digest",
}
ROW_DIGEST = "row_digest"
DIGEST_COLUMNS: tuple[str, ...] = (*DIGEST_COLUMN.values(), ROW_DIGEST)
_SIZE = 16


def digest_bytes(*parts: bytes | memoryview | str) -> str:
    h = hashlib.blake2b(digest_size=_SIZE)
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))  # length-prefixed: ("ab", "c") != ("a", "bc")
        h.update(data)
    return h.hexdigest()


def audio_digest(samples: np.ndarray | None, sample_rate: int | None) -> str | None:
    """Digest of float32 samples and their rate; None when there is no audio."""
    if samples is None:
        return None
    data = np.ascontiguousarray(samples, dtype="<f4")
    return digest_bytes(str(int(sample_rate or 0)), memoryview(data).cast("B"))


def midi_digest(blob: bytes | memoryview | None) -> str | None:
    return None if blob is None else digest_bytes(blob)


def text_digest(text: str | None) -> str | None:
    return None if text is None else digest_bytes(text)


def row_digest(row: dict, ignore: tuple[str, ...]) -> str:
    """Digest of a `segments` row's content (without the columns in `ignore`, e.g. timestamps)."""
    content = {k: v for k, v in row.items() if k not in ignore}
    return digest_bytes(json.dumps(content, sort_keys=True, default=str))
