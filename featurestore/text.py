"""The one rule for "is there any text here": shared by ingest and the scorer."""

from __future__ import annotations

import unicodedata

# Cc: control characters (NUL, BEL, ...); Cf: format characters (zero-width space,
# joiners, BOM, direction marks). Neither shows anything to a reader or an encoder.
_INVISIBLE = ("Cc", "Cf")
BLANK_REASON = "empty after removing whitespace, control and zero-width characters"


def has_visible_text(text: str) -> bool:
    return any(not ch.isspace() and unicodedata.category(ch) not in _INVISIBLE for ch in text)


def visible_text_or_none(text: str | None) -> str | None:
    """`text` stripped of surrounding whitespace, or None when nothing visible is left."""
    if text is None:
        return None
    text = str(text).strip()
    return text if has_visible_text(text) else None
