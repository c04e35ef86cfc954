"""A synthetic corpus in the upstream parquet layout, so the pipeline runs with no data.

Songs of each album colour differ in musically real but overlapping ways (key,
tempo, register, density, rhythm, chords, dynamics, timbre); text carries a
moderate (lyrics) or weak (concept) colour signal. See styles.py for the tables.
"""

from synth.corpus import (
    UPSTREAM_SCHEMA,
    ColorCounts,
    SynthConfig,
    SynthSummary,
    song_color,
    song_id,
    write_corpus,
)
from synth.styles import ALBUM_COLORS, COVERAGE

__all__ = [
    "ALBUM_COLORS",
    "COVERAGE",
    "UPSTREAM_SCHEMA",
    "ColorCounts",
    "SynthConfig",
    "SynthSummary",
    "song_color",
    "song_id",
    "write_corpus",
]
