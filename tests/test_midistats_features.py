"""midistats feature sets beyond v1: instrument families (`features=instruments`) and part rhythms (`parts`)."""

import json

import numpy as np
import pytest

from encoders.base import EncoderInput
from encoders.errors import EncoderError
from encoders.midistats import (FEATURE_NAMES, INSTRUMENT_NAMES, PART_NAMES, MidiStatsConfig, MidiStatsEncoder,
                                feature_names)
from encoders.registry import build_encoder, make_config
from tinydata import midi_bytes, parts_midi

SYNTH_LEAD, FINGERED_BASS, DRUMS = 81, 33, 9  # GM programs (families 10 and 4) and the drum channel


def stats(data: bytes, features: str) -> dict[str, float]:
    config = MidiStatsConfig(features=features)
    vector = MidiStatsEncoder(config).prepare(EncoderInput("s", midi=data), "midi")
    assert vector.shape == (len(feature_names(config)),) and np.isfinite(vector).all()
    return dict(zip(feature_names(config), vector.tolist()))


def band() -> bytes:
    """4 beats: a lead on every half beat (8 notes), a bass on beats 0 and 2 (2 notes of 2 beats), and two
    drum hits on the triplet grid (1/3 and 2/3 of beat 1)."""
    lead = [(72 + i % 3, i / 2, 0.5, 90) for i in range(8)]
    bass = [(36, 0, 2, 80), (38, 2, 2, 80)]
    drums = [(42, 1 + 1 / 3, 0.1, 70), (42, 1 + 2 / 3, 0.1, 70)]
    return parts_midi([(SYNTH_LEAD, 0, lead), (FINGERED_BASS, 1, bass), (0, DRUMS, drums)], ticks_per_beat=480)


def test_instrument_families_are_shares_of_the_pitched_notes():
    s = stats(band(), "instruments")
    assert s["family_synth_lead"] == pytest.approx(8 / 10) and s["family_bass"] == pytest.approx(2 / 10)
    assert sum(s[f] for f in INSTRUMENT_NAMES if f.startswith("family_")) == pytest.approx(1.0)
    assert s["instruments_log"] == pytest.approx(np.log1p(2))  # the drum kit's program is not an instrument
    # No program change: General MIDI's program 0, a piano.
    plain = stats(midi_bytes([(60, 0, 1, 90), (64, 1, 1, 90)]), "instruments")
    assert plain["family_piano"] == 1.0 and plain["instruments_log"] == pytest.approx(np.log1p(1))


def test_part_rhythms_are_counted_in_beats_whatever_the_tempo():
    s = stats(band(), "parts")
    # 10 distinct onsets (8 lead, the bass's two coincide with lead onsets, 2 drum hits) over 4 beats.
    assert s["onsets_per_beat_log"] == pytest.approx(np.log1p(10 / 4))
    assert s["on_triplet"] == pytest.approx(2 / 10)
    assert s["top_part_onsets_per_beat_log"] == pytest.approx(np.log1p(8 / 4))
    assert s["top_part_length_beats_log"] == pytest.approx(np.log1p(0.5))
    assert s["bottom_part_onsets_per_beat_log"] == pytest.approx(np.log1p(2 / 4))
    assert s["bottom_part_length_beats_log"] == pytest.approx(np.log1p(2))
    notes = [(60 + i, i / 2, 0.5, 90) for i in range(8)]
    slow, fast = stats(midi_bytes(notes, tempo_bpm=60.0), "parts"), stats(midi_bytes(notes, tempo_bpm=180.0), "parts")
    assert [slow[n] for n in PART_NAMES] == pytest.approx([fast[n] for n in PART_NAMES])
    assert slow["note_density_log"] != pytest.approx(fast["note_density_log"])  # v1's density is per second


def test_feature_sets_extend_v1_without_changing_it():
    data = band()
    basic = stats(data, "basic")
    for features, extra in (("instruments", INSTRUMENT_NAMES), ("parts", INSTRUMENT_NAMES + PART_NAMES)):
        extended = stats(data, features)
        assert list(extended) == list(FEATURE_NAMES + extra)
        assert [extended[n] for n in FEATURE_NAMES] == [basic[n] for n in FEATURE_NAMES]


def test_feature_set_is_part_of_the_identity_and_v1_keeps_its_fingerprint():
    default = MidiStatsEncoder(MidiStatsConfig())
    assert default.config.to_json() == "{}"  # tables encoded before `features` existed stay the same encoder
    instruments = MidiStatsEncoder(make_config(MidiStatsEncoder, {"features": "instruments"}))
    assert json.loads(instruments.config.to_json()) == {"features": "instruments"}
    assert instruments.fingerprint() != default.fingerprint()
    assert build_encoder("midistats", {"features": "parts"}).shape == (len(FEATURE_NAMES + INSTRUMENT_NAMES + PART_NAMES),)
    with pytest.raises(EncoderError, match="basic, instruments, parts"):
        MidiStatsConfig(features="everything")
