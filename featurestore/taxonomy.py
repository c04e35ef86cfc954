"""The chromatic taxonomy: the one place that knows colours, dimensions and modes.

Everything else (ingest label derivation, synthetic corpus, training targets,
metrics, scoring) asks this module instead of hard-coding the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurestore.errors import ChromaticError

DIMENSIONS: tuple[str, ...] = ("temporal", "spatial", "ontological")

MODES: dict[str, tuple[str, ...]] = {
    "temporal": ("Past", "Present", "Future"),
    "spatial": ("Thing", "Place", "Person"),
    "ontological": ("Imagined", "Forgotten", "Known"),
}

# colour -> (temporal, spatial, ontological); each entry is a tuple of modes,
# empty meaning "none" (a uniform target).
_TABLE: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "Black": ((), (), ()),
    "Red": (("Past",), ("Thing",), ("Known",)),
    "Orange": (("Past",), ("Thing",), ("Imagined",)),
    "Yellow": (("Future",), ("Place",), ("Imagined",)),
    "Green": (("Future",), ("Place",), ("Forgotten",)),
    "Blue": (("Present",), ("Person",), ("Forgotten",)),
    "Indigo": ((), (), ("Known", "Forgotten")),
    "Violet": (("Present",), ("Person",), ("Known",)),
    "White": ((), (), ()),
}

COLORS: tuple[str, ...] = tuple(_TABLE)

SINGLE_MODE_WEIGHT = 0.8
SINGLE_MODE_REST = 0.1
TWO_MODE_WEIGHT = 0.4
TWO_MODE_REST = 0.2


class TaxonomyError(ChromaticError, ValueError):
    """A colour or mode name that the taxonomy does not know."""


@dataclass(frozen=True)
class ColorModes:
    color: str
    temporal: tuple[str, ...]
    spatial: tuple[str, ...]
    ontological: tuple[str, ...]

    def modes(self, dimension: str) -> tuple[str, ...]:
        return getattr(self, dimension)

    def label_string(self, dimension: str) -> str | None:
        """Upstream spelling: None for 'none', a comma list for several modes."""
        modes = self.modes(dimension)
        return ", ".join(modes) if modes else None


def canonical_color(name: str | None) -> str:
    """Case-insensitive colour lookup; raises TaxonomyError listing valid colours."""
    if name is None:
        raise TaxonomyError(f"colour is missing; expected one of {', '.join(COLORS)}")
    cleaned = str(name).strip().lower()
    for color in COLORS:
        if color.lower() == cleaned:
            return color
    raise TaxonomyError(f"unknown colour {name!r}; expected one of {', '.join(COLORS)}")


def color_modes(color: str) -> ColorModes:
    color = canonical_color(color)
    temporal, spatial, ontological = _TABLE[color]
    return ColorModes(color, temporal, spatial, ontological)


def parse_modes(dimension: str, value: str | None) -> tuple[str, ...]:
    """Parse an upstream mode label ("Known, Forgotten", "none", "", None)."""
    if dimension not in MODES:
        raise TaxonomyError(f"unknown dimension {dimension!r}; expected one of {', '.join(DIMENSIONS)}")
    if value is None:
        return ()
    parts = [p.strip() for p in str(value).replace(";", ",").split(",")]
    parts = [p for p in parts if p and p.lower() not in ("none", "null", "nan")]
    out = []
    for part in parts:
        match = [m for m in MODES[dimension] if m.lower() == part.lower()]
        if not match:
            raise TaxonomyError(
                f"unknown {dimension} mode {part!r}; expected one of {', '.join(MODES[dimension])} or none"
            )
        out.append(match[0])
    return tuple(dict.fromkeys(out))


def soft_target(dimension: str, modes: tuple[str, ...]) -> np.ndarray:
    """Soft target over MODES[dimension]: 0.8/0.1/0.1, 0.4/0.4/0.2, or uniform."""
    order = MODES[dimension]
    if len(modes) == 0 or len(modes) >= len(order):
        return np.full(len(order), 1.0 / len(order), dtype=np.float32)
    if len(modes) == 1:
        target = np.full(len(order), SINGLE_MODE_REST, dtype=np.float32)
        target[order.index(modes[0])] = SINGLE_MODE_WEIGHT
        return target
    target = np.full(len(order), TWO_MODE_REST, dtype=np.float32)
    for mode in modes:
        target[order.index(mode)] = TWO_MODE_WEIGHT
    return target


def single_mode_index(dimension: str, modes: tuple[str, ...]) -> int:
    """Index of the one mode, or -1 where the target has no single right answer."""
    return MODES[dimension].index(modes[0]) if len(modes) == 1 else -1


def color_index(color: str) -> int:
    return COLORS.index(canonical_color(color))
