"""pianoroll's instrument-family rows (`families=true`)."""

import json

import numpy as np

from encoders.base import EncoderInput
from encoders.pianoroll import PianoRollConfig, PianoRollEncoder
from encoders.registry import make_config
from tinydata import parts_midi


def roll_of(data: bytes, **params) -> np.ndarray:
    encoder = PianoRollEncoder(make_config(PianoRollEncoder, params))
    roll = encoder.encode_batch([encoder.prepare(EncoderInput("s", midi=data), "midi")])[0]
    assert roll.shape == encoder.shape
    return roll


def test_family_rows_mark_when_each_instrument_family_plays():
    # 120 bpm: a beat is 0.5 s, 5 steps of 100 ms.
    lead, bass, drums = [(72, 0, 1, 127)], [(36, 2, 2, 127)], [(42, 1, 0.5, 127)]
    data = parts_midi([(81, 0, lead), (33, 1, bass), (0, 9, drums)])  # synth lead, fingered bass, a drum kit
    roll = roll_of(data, families="true", steps=40, velocity="binary")
    assert roll.shape == (128 + 16, 40)
    family = {f: np.flatnonzero(roll[128 + f]).tolist() for f in range(16) if roll[128 + f].any()}
    assert family == {10: list(range(0, 5)), 4: list(range(10, 20))}  # drums mark no family
    np.testing.assert_array_equal(roll[:128], roll_of(data, steps=40, velocity="binary"))
    separate = roll_of(data, families="true", drums="separate", steps=40)
    assert separate.shape == (256 + 16, 40) and separate[256 + 10].any() and separate[128 + 42].any()
    assert separate[256 + 4, 10] == np.float16(127 / 127)  # velocity mode: the family row carries the level


def test_families_keep_v1_fingerprint_and_change_the_identity():
    assert json.loads(PianoRollConfig().to_json()) == {"drums": "keep", "resolution_ms": 100.0, "steps": 256,
                                                       "velocity": "velocity"}
    families = PianoRollEncoder(make_config(PianoRollEncoder, {"families": "true"}))
    assert json.loads(families.config.to_json())["families"] is True
    assert families.fingerprint() != PianoRollEncoder(PianoRollConfig()).fingerprint()
    assert families.shape == (144, 256)
