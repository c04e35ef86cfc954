"""pianoroll's beat grid (`time=beats`) and instrument-family rows (`families=true`)."""

import json

import numpy as np
import pytest

from encoders.base import EncoderInput
from encoders.errors import EncoderError
from encoders.pianoroll import PianoRollConfig, PianoRollEncoder
from encoders.registry import make_config
from tinydata import midi_bytes, parts_midi

NOTES = [(60, 0, 1, 100), (64, 1.5, 0.25, 90), (67, 3, 2, 80)]  # (pitch, start beat, beats, velocity)


def roll_of(data: bytes, **params) -> np.ndarray:
    encoder = PianoRollEncoder(make_config(PianoRollEncoder, params))
    roll = encoder.encode_batch([encoder.prepare(EncoderInput("s", midi=data), "midi")])[0]
    assert roll.shape == encoder.shape
    return roll


def test_a_beat_grid_roll_is_the_same_at_any_tempo():
    slow = roll_of(midi_bytes(NOTES, tempo_bpm=60.0), time="beats", steps=32)
    fast = roll_of(midi_bytes(NOTES, tempo_bpm=150.0, ticks_per_beat=96), time="beats", steps=32)
    np.testing.assert_array_equal(slow, fast)
    assert np.flatnonzero(slow[60]).tolist() == [0, 1, 2, 3]  # 4 sixteenths
    assert np.flatnonzero(slow[64]).tolist() == [6]
    assert np.flatnonzero(slow[67]).tolist() == list(range(12, 20))
    eighths = roll_of(midi_bytes(NOTES, tempo_bpm=60.0), time="beats", steps_per_beat="2", steps=16)
    assert np.flatnonzero(eighths[67]).tolist() == list(range(6, 10))
    # The seconds grid (v1) does depend on the tempo.
    assert not np.array_equal(roll_of(midi_bytes(NOTES, tempo_bpm=60.0)), roll_of(midi_bytes(NOTES, tempo_bpm=150.0)))


def test_family_rows_mark_when_each_instrument_family_plays():
    lead, bass, drums = [(72, 0, 1, 127)], [(36, 2, 2, 127)], [(42, 1, 0.5, 127)]
    data = parts_midi([(81, 0, lead), (33, 1, bass), (0, 9, drums)])  # synth lead, fingered bass, a drum kit
    roll = roll_of(data, families="true", time="beats", steps=16, velocity="binary")
    assert roll.shape == (128 + 16, 16)
    family = {f: np.flatnonzero(roll[128 + f]).tolist() for f in range(16) if roll[128 + f].any()}
    assert family == {10: [0, 1, 2, 3], 4: list(range(8, 16))}  # drums mark no family
    np.testing.assert_array_equal(roll[:128], roll_of(data, time="beats", steps=16, velocity="binary"))
    separate = roll_of(data, families="true", drums="separate", steps=16)
    assert separate.shape == (256 + 16, 16) and separate[256 + 10].any() and separate[128 + 42].any()


def test_new_options_keep_v1_fingerprint_and_are_checked():
    assert json.loads(PianoRollConfig().to_json()) == {"drums": "keep", "resolution_ms": 100.0, "steps": 256,
                                                       "velocity": "velocity"}
    v1 = PianoRollEncoder(PianoRollConfig()).fingerprint()
    assert PianoRollEncoder(PianoRollConfig(families=True)).fingerprint() != v1
    assert PianoRollEncoder(PianoRollConfig(time="beats")).fingerprint() != v1
    with pytest.raises(EncoderError, match="seconds, beats"):
        PianoRollConfig(time="bars")
    with pytest.raises(EncoderError, match="steps_per_beat"):
        PianoRollConfig(time="beats", steps_per_beat=0)
