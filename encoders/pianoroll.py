"""`pianoroll`: MIDI -> a [pitch x time] roll on a fixed grid of real seconds.

Note ticks go through the file's tempo map (track 0 of a type-1 file governs
every track), so a roll step always means `resolution_ms` of wall-clock time
whatever the tempo changes. Step k covers [k*res, (k+1)*res) from the start of
the segment's MIDI (time 0, not the first note: leading rests are information).
A note marks every step its sounding interval overlaps; a note shorter than a
step (or of zero length) still marks its start step. A MIDI file with no notes
(a resting track) is a valid all-zero roll, not an error.

Rows: `drums="keep"` merges drum notes into rows 0..127 by their note number,
`"drop"` ignores them, and `"separate"` puts pitched notes in rows 0..127 and
drums in a second block, rows 128..255 (shape (256, steps)). `families=true`
appends 16 rows, one per General MIDI instrument family (program // 8), marking
when that family plays (pitched notes only): what a multitrack roll keeps of
the instrumentation. Where notes of one row overlap, the loudest wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from encoders.base import BadInput, Encoder, EncoderConfig, EncoderInput
from encoders.errors import EncoderError
from encoders.media import NoteTable, check_modality, decode_midi, note_table
from encoders.registry import register

VELOCITY_MODES = ("velocity", "binary")
DRUM_MODES = ("keep", "drop", "separate")
PITCHES = 128
FAMILIES = 16  # General MIDI instrument families, 8 programs each
# Guards float error at step boundaries (e.g. 0.3 s / 0.1 s = 2.999...): far
# below any MIDI timing resolution, far above float64 rounding.
_EPS_STEPS = 1e-6


@dataclass(frozen=True)
class PianoRollConfig(EncoderConfig):
    resolution_ms: float = 100.0
    steps: int = 256
    velocity: str = "velocity"  # velocity (vel/127) | binary (1 where a note sounds)
    drums: str = "keep"  # keep | drop | separate
    families: bool = False  # 16 more rows: when each General MIDI instrument family plays
    added_fields = ("families",)

    def __post_init__(self):
        # Canonical types, so resolution_ms=50 and "50" give one fingerprint.
        check_grid(self, "pianoroll")
        if self.velocity not in VELOCITY_MODES:
            raise EncoderError(f"pianoroll velocity={self.velocity!r}; choose one of {', '.join(VELOCITY_MODES)}")
        if self.drums not in DRUM_MODES:
            raise EncoderError(f"pianoroll drums={self.drums!r}; choose one of {', '.join(DRUM_MODES)}")


def check_grid(config: EncoderConfig, encoder: str) -> None:
    """Canonical, valid `resolution_ms`/`steps`: the grid every roll encoder shares."""
    object.__setattr__(config, "resolution_ms", float(config.resolution_ms))
    object.__setattr__(config, "steps", int(config.steps))
    if not config.resolution_ms > 0:
        raise EncoderError(f"{encoder} resolution_ms must be > 0, got {config.resolution_ms}; e.g. 50, 100, 200")
    if config.steps < 1:
        raise EncoderError(f"{encoder} steps must be >= 1, got {config.steps}; e.g. 256")


@register("pianoroll")
class PianoRollEncoder(Encoder):
    config_cls = PianoRollConfig
    modalities = ("midi",)
    kind = "tensor"
    dtype = "float16"
    code_version = "1"
    config: PianoRollConfig

    @property
    def shape(self) -> tuple[int, ...]:
        return (roll_rows(self.config), self.config.steps)

    def prepare(self, item: EncoderInput, modality: str) -> np.ndarray:
        check_modality(self, modality)
        if item.midi is None:
            raise BadInput("no MIDI in this item")
        return render_roll(note_table(decode_midi(item.midi)), self.config)

    def encode_batch(self, prepared: list[np.ndarray]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, *self.shape), dtype=np.float16)
        return np.stack(prepared).astype(np.float16, copy=False)


def roll_rows(config: PianoRollConfig) -> int:
    return note_rows(config) + (FAMILIES if config.families else 0)


def note_rows(config: PianoRollConfig) -> int:
    """Rows before the family block: pitches, and drums when kept apart."""
    return 2 * PITCHES if config.drums == "separate" else PITCHES


def render_roll(notes: NoteTable, config: PianoRollConfig) -> np.ndarray:
    """Draw notes onto a zero roll of the config's shape (float16)."""
    roll = np.zeros((roll_rows(config), config.steps), dtype=np.float32)
    keep = np.ones(notes.size, dtype=bool) if config.drums != "drop" else ~notes.is_drum
    row = notes.pitch.astype(np.int64) + np.where(notes.is_drum & (config.drums == "separate"), PITCHES, 0)
    res_s = config.resolution_ms / 1000.0
    first = np.floor(notes.start_s / res_s + _EPS_STEPS).astype(np.int64)
    # Exclusive end step; at least one step so short notes mark their onset.
    stop = np.maximum(np.ceil(notes.end_s / res_s - _EPS_STEPS).astype(np.int64), first + 1)
    level = notes.velocity / 127.0 if config.velocity == "velocity" else np.ones(notes.size)
    visible = keep & (first < config.steps) & (level > 0)
    marks = [(row, visible)]
    if config.families:
        family_row = note_rows(config) + notes.program.astype(np.int64) // 8
        marks.append((family_row, visible & ~notes.is_drum))
    for rows, shown in marks:
        for r, a, b, v in zip(rows[shown], first[shown], np.minimum(stop[shown], config.steps), level[shown]):
            np.maximum(roll[r, a:b], v, out=roll[r, a:b])
    return roll.astype(np.float16)
