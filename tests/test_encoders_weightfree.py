"""The weight-free encoders (pianoroll, midistats, spectral) and media decoding."""

from __future__ import annotations

import io
import json
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import mido
import numpy as np
import pytest
import soundfile
from tinydata import midi_bytes, tone

from encoders.base import BadInput, EncoderInput
from encoders.errors import EncoderError
from encoders.media import check_audio, decode_midi, load_audio_path, load_midi_path, resample
from encoders.midistats import FEATURE_NAMES, MidiStatsConfig, MidiStatsEncoder
from encoders.pianoroll import PianoRollConfig, PianoRollEncoder
from encoders.registry import build_encoder, encoder_from_stored, make_config
from encoders.spectral import SpectralConfig, SpectralEncoder

TPB = 480


def type1_midi() -> bytes:
    """Conductor track 0 (120 bpm, then 60 bpm from beat 4) + piano, bass and drum tracks.

    Real onsets: beat b < 4 is at b/2 s; beat b >= 4 is at 2 + (b - 4) s.
      piano 60: beats 0-1   -> 0.0-0.5 s
      piano 64: beats 5-6   -> 3.0-4.0 s
      bass  40: beats 3-5   -> 1.5-3.0 s   (crosses the tempo change)
      drum  36: beats 6-6.05 -> 4.0-4.05 s (shorter than any step)
    """
    midi = mido.MidiFile(type=1, ticks_per_beat=TPB)
    conductor = mido.MidiTrack(
        [
            mido.MetaMessage("set_tempo", tempo=500_000, time=0),  # 120 bpm
            mido.MetaMessage("set_tempo", tempo=1_000_000, time=4 * TPB),  # 60 bpm from beat 4
        ]
    )
    midi.tracks += [
        conductor,
        _track(channel=0, program=0, notes=[(60, 0, 1, 100), (64, 5, 1, 64)]),
        _track(channel=1, program=33, notes=[(40, 3, 2, 127)]),
        _track(channel=9, program=0, notes=[(36, 6, 0.05, 90)]),
    ]
    buf = io.BytesIO()
    midi.save(file=buf)
    return buf.getvalue()


def _track(channel: int, program: int, notes) -> mido.MidiTrack:
    events = []
    for pitch, beat, dur, vel in notes:
        events.append((int(beat * TPB), mido.Message("note_on", channel=channel, note=pitch, velocity=vel)))
        events.append((int((beat + dur) * TPB), mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
    track = mido.MidiTrack([mido.Message("program_change", channel=channel, program=program, time=0)])
    now = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        track.append(msg.copy(time=tick - now))
        now = tick
    return track


def roll_of(data: bytes, **params) -> np.ndarray:
    encoder = PianoRollEncoder(PianoRollConfig(**params))
    roll = encoder.encode_batch([encoder.prepare(EncoderInput("s", midi=data), "midi")])[0]
    assert roll.shape == encoder.shape and roll.dtype == np.float16
    return roll


def active_steps(row: np.ndarray) -> list[int]:
    return np.flatnonzero(row).tolist()


# -- pianoroll ----------------------------------------------------------------------
def test_type1_tempo_change_places_notes_at_their_real_seconds():
    roll = roll_of(type1_midi())  # 100 ms steps
    assert active_steps(roll[60]) == list(range(0, 5))
    assert active_steps(roll[64]) == list(range(30, 40))
    assert active_steps(roll[40]) == list(range(15, 30))
    assert active_steps(roll[36]) == [40]  # 50 ms drum hit still marks its start step
    assert np.count_nonzero(roll) == 5 + 10 + 15 + 1


def test_resolution_50ms_version_doubles_the_placement():
    v1, v2 = PianoRollEncoder(make_config(PianoRollEncoder, {})), PianoRollEncoder(
        make_config(PianoRollEncoder, {"resolution_ms": "50"})
    )
    assert v1.shape == v2.shape == (128, 256)
    assert v1.fingerprint() != v2.fingerprint()
    roll = roll_of(type1_midi(), resolution_ms=50)
    assert active_steps(roll[60]) == list(range(0, 10))
    assert active_steps(roll[64]) == list(range(60, 80))
    assert active_steps(roll[40]) == list(range(30, 60))
    assert active_steps(roll[36]) == [80]


def test_steps_crop_and_pad():
    cropped = roll_of(type1_midi(), steps=35)
    assert cropped.shape == (128, 35)
    assert active_steps(cropped[64]) == list(range(30, 35))
    assert not cropped[36].any()  # the drum hit at step 40 is past the crop
    padded = roll_of(type1_midi(), steps=1000)
    assert not padded[:, 41:].any()
    np.testing.assert_array_equal(padded[:, :256], roll_of(type1_midi()))
    assert not roll_of(midi_bytes([])).any()  # a resting track is an empty roll, not an error


def test_velocity_and_binary_modes():
    velocity = roll_of(type1_midi())
    assert velocity[60, 0] == pytest.approx(100 / 127, abs=1e-3)
    assert velocity[64, 30] == pytest.approx(64 / 127, abs=1e-3)
    binary = roll_of(type1_midi(), velocity="binary")
    assert set(np.unique(binary).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(binary > 0, velocity > 0)


def test_drum_modes():
    keep = roll_of(type1_midi(), drums="keep")
    drop = roll_of(type1_midi(), drums="drop")
    separate = roll_of(type1_midi(), drums="separate")
    assert keep[36, 40] > 0 and not drop[36].any()
    assert separate.shape == (256, 256) and PianoRollEncoder(PianoRollConfig(drums="separate")).shape == (256, 256)
    assert not separate[36].any() and active_steps(separate[128 + 36]) == [40]
    np.testing.assert_array_equal(separate[:128], drop)


def test_overlapping_notes_on_one_pitch_keep_the_loudest():
    data = midi_bytes([(60, 0, 4, 40), (60, 1, 1, 120)])
    roll = roll_of(data)
    assert roll[60, 0] == pytest.approx(40 / 127, abs=1e-3)
    assert roll[60, 5] == pytest.approx(120 / 127, abs=1e-3)
    assert active_steps(roll[60]) == list(range(0, 20))


def test_bad_params_name_the_valid_choices():
    with pytest.raises(EncoderError, match="keep, drop, separate"):
        PianoRollConfig(drums="maybe")
    with pytest.raises(EncoderError, match="velocity, binary"):
        make_config(PianoRollEncoder, {"velocity": "loud"})
    with pytest.raises(EncoderError, match="resolution_ms"):
        PianoRollConfig(resolution_ms=0)
    with pytest.raises(EncoderError, match="sample_rate >= 16000"):
        make_config(SpectralEncoder, {"sample_rate": "8000"})


def test_fingerprint_is_stable_and_tracks_params():
    base = PianoRollEncoder(PianoRollConfig()).fingerprint()
    assert PianoRollEncoder(make_config(PianoRollEncoder, {"steps": "256"})).fingerprint() == base
    changed = {PianoRollEncoder(PianoRollConfig(**p)).fingerprint() for p in ({"steps": 128}, {"velocity": "binary"})}
    assert base not in changed and len(changed) == 2
    assert SpectralEncoder(SpectralConfig()).fingerprint() != SpectralEncoder(SpectralConfig(n_mels=64)).fingerprint()
    v2 = PianoRollEncoder(PianoRollConfig(resolution_ms=50))  # an int, as library callers write it
    assert v2.fingerprint() == PianoRollEncoder(make_config(PianoRollEncoder, {"resolution_ms": "50"})).fingerprint()
    # The CLI builds through the registry; the scorer rebuilds from the stored params JSON.
    for name, encoder in (("pianoroll", v2), ("midistats", MidiStatsEncoder(MidiStatsConfig()))):
        assert build_encoder(name, json.loads(encoder.config.to_json())).fingerprint() == encoder.fingerprint()
        assert encoder_from_stored(name, encoder.config.to_json()).fingerprint() == encoder.fingerprint()


# -- bad input ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, reason",
    [(b"", "empty"), (b"not a midi file at all", "undecodable MIDI"), (type1_midi()[:30], "undecodable MIDI")],
)
def test_bad_midi_raises_badinput_with_reason(data, reason):
    with pytest.raises(BadInput, match=reason):
        decode_midi(data)
    for encoder in (PianoRollEncoder(PianoRollConfig()), MidiStatsEncoder(MidiStatsConfig())):
        with pytest.raises(BadInput, match=reason):
            encoder.prepare(EncoderInput("s", midi=data), "midi")


@pytest.mark.parametrize(
    "samples, sr, reason",
    [
        (np.array([0.1, np.nan, 0.2], np.float32), 16_000, "non-finite"),
        (np.array([np.inf] * 10, np.float32), 16_000, "non-finite"),
        (np.zeros(0, np.float32), 16_000, "empty"),
        (np.zeros((2, 100), np.float32), 16_000, "mono"),
        (np.zeros(100, np.float32), None, "sample rate"),
    ],
)
def test_bad_audio_raises_badinput_with_reason(samples, sr, reason):
    with pytest.raises(BadInput, match=reason):
        check_audio(samples, sr)
    with pytest.raises(BadInput, match=reason):
        SpectralEncoder(SpectralConfig()).prepare(EncoderInput("s", audio=samples, sample_rate=sr), "audio")


def test_encode_keeps_per_item_errors_in_a_mixed_batch():
    encoder = MidiStatsEncoder(MidiStatsConfig())
    items = [
        EncoderInput("good", midi=type1_midi()),
        EncoderInput("junk", midi=b"junk"),
        EncoderInput("empty", midi=midi_bytes([])),
        EncoderInput("good2", midi=midi_bytes([(72, 0, 1, 80)])),
    ]
    good, junk, empty, good2 = encoder.encode(items, "midi")
    assert isinstance(junk, BadInput) and "undecodable" in str(junk)
    assert isinstance(empty, BadInput) and str(empty) == "MIDI has no notes"
    assert good.shape == good2.shape == encoder.shape and not np.array_equal(good, good2)


def test_wrong_modality_is_refused_with_the_readable_ones():
    with pytest.raises(EncoderError, match="reads: midi"):
        PianoRollEncoder(PianoRollConfig()).prepare(EncoderInput("s", midi=type1_midi()), "audio")


# -- midistats ----------------------------------------------------------------------
def stats(data: bytes) -> dict[str, float]:
    vector = MidiStatsEncoder(MidiStatsConfig()).prepare(EncoderInput("s", midi=data), "midi")
    assert vector.shape == (len(FEATURE_NAMES),) and vector.dtype == np.float32 and np.isfinite(vector).all()
    return dict(zip(FEATURE_NAMES, vector.tolist()))


def chords(root: int, third: int, octave_shift: int = 0) -> bytes:
    base = root + 12 * octave_shift
    return midi_bytes([(p, beat, 1, 90) for beat in range(8) for p in (base, base + third, base + 7)])


def test_midistats_separates_major_from_minor_and_low_from_high():
    major, minor = stats(chords(60, 4)), stats(chords(60, 3))
    assert major["key_major_strength"] > major["key_minor_strength"]
    assert minor["key_minor_strength"] > minor["key_major_strength"]
    assert major["pitch_class_4"] > 0 and minor["pitch_class_4"] == 0
    low, high = stats(chords(60, 4, octave_shift=-2)), stats(chords(60, 4, octave_shift=2))
    assert high["pitch_mean"] > low["pitch_mean"] + 0.3
    assert stats(chords(60, 4))["polyphony_max_log"] == pytest.approx(np.log1p(3))


def test_midistats_reads_time_through_the_tempo_map():
    s = stats(type1_midi())
    assert s["drum_fraction"] == pytest.approx(1 / 4)
    # 6.05 beats in 4.05 s of music: the average tempo is below 120 bpm.
    assert s["tempo_log2_rel_120"] == pytest.approx(np.log2((6.05 / 4.05 * 60) / 120), abs=1e-3)
    assert s["note_density_log"] == pytest.approx(np.log1p(4 / 4.05), abs=1e-4)
    assert s["on_beat"] == 1.0


def test_midistats_is_deterministic_and_handles_drum_only_files():
    data = type1_midi()
    np.testing.assert_array_equal(
        MidiStatsEncoder(MidiStatsConfig()).encode([EncoderInput("a", midi=data)], "midi")[0],
        MidiStatsEncoder(MidiStatsConfig()).encode([EncoderInput("b", midi=data)], "midi")[0],
    )
    drums_only = mido.MidiFile(type=1, ticks_per_beat=TPB)
    drums_only.tracks.append(_track(channel=9, program=0, notes=[(36, b, 0.25, 100) for b in range(4)]))
    buf = io.BytesIO()
    drums_only.save(file=buf)
    s = stats(buf.getvalue())
    assert s["drum_fraction"] == 1.0 and s["pitch_mean"] == 0.0 and s["ioi_mean_log"] > 0


# -- spectral -----------------------------------------------------------------------
def spectral(samples: np.ndarray, sr: int = 44_100) -> np.ndarray:
    encoder = SpectralEncoder(SpectralConfig())
    vector = encoder.encode_batch([encoder.prepare(EncoderInput("s", audio=samples, sample_rate=sr), "audio")])[0]
    assert vector.shape == encoder.shape and vector.dtype == np.float32 and np.isfinite(vector).all()
    return vector


def test_spectral_is_deterministic_finite_on_silence_and_tells_timbres_apart():
    sine = tone(220.0, 3.0)
    np.testing.assert_array_equal(spectral(sine), spectral(sine.copy()))
    silence = spectral(np.zeros(44_100 * 2, np.float32))
    square = spectral((0.3 * np.sign(np.sin(2 * np.pi * 220.0 * np.arange(3 * 44_100) / 44_100))).astype(np.float32))
    noise = spectral(np.random.default_rng(1).uniform(-0.3, 0.3, 3 * 44_100).astype(np.float32))
    vectors = [spectral(sine), square, noise, silence]
    for i in range(len(vectors)):
        for j in range(i + 1, len(vectors)):
            assert np.linalg.norm(vectors[i] - vectors[j]) > 1.0


def test_spectral_accepts_any_input_rate_and_tiny_clips():
    assert spectral(tone(440.0, 1.0, sr=16_000), sr=16_000).shape == spectral(tone(440.0, 1.0)).shape
    spectral(tone(440.0, 0.01))  # shorter than one FFT window


def test_resample_is_a_noop_at_equal_rates_and_deterministic():
    wave = tone(330.0, 0.5)
    np.testing.assert_array_equal(resample(wave, 44_100, 44_100), wave)
    once, twice = resample(wave, 44_100, 22_050), resample(wave, 44_100, 22_050)
    assert once.dtype == np.float32 and once.size == wave.size // 2
    np.testing.assert_array_equal(once, twice)


# -- media paths --------------------------------------------------------------------
def test_load_paths_mix_down_and_report_missing_files(tmp_path):
    stereo = np.stack([tone(220.0, 0.2, sr=8000), np.zeros(1600, np.float32)], axis=1)
    soundfile.write(tmp_path / "a.wav", stereo, 8000, subtype="FLOAT")
    samples, sr = load_audio_path(tmp_path / "a.wav")
    assert sr == 8000 and samples.ndim == 1
    np.testing.assert_allclose(samples, stereo.mean(axis=1), atol=1e-6)
    (tmp_path / "a.mid").write_bytes(type1_midi())
    assert decode_midi(load_midi_path(tmp_path / "a.mid")).ticks_per_beat == TPB
    with pytest.raises(BadInput, match="cannot read MIDI file"):
        load_midi_path(tmp_path / "missing.mid")
    with pytest.raises(BadInput, match="cannot read audio file"):
        load_audio_path(tmp_path / "missing.wav")


# -- spawn safety -------------------------------------------------------------------
def all_encoders():
    return [
        PianoRollEncoder(PianoRollConfig(drums="separate")),
        MidiStatsEncoder(MidiStatsConfig()),
        SpectralEncoder(SpectralConfig()),
    ]


def _prepare_elsewhere(encoder, item, modality):
    return encoder.prepare(item, modality)


def test_encoders_pickle_and_prepare_identically_in_a_spawned_process():
    items = {
        "midi": EncoderInput("m", midi=type1_midi()),
        "audio": EncoderInput("a", audio=tone(220.0, 1.0), sample_rate=44_100),
    }
    encoders = all_encoders()
    for encoder in encoders:
        clone = pickle.loads(pickle.dumps(encoder))
        assert clone.config == encoder.config and clone.fingerprint() == encoder.fingerprint()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        futures = [pool.submit(_prepare_elsewhere, e, items[e.modalities[0]], e.modalities[0]) for e in encoders]
        remote = [f.result(timeout=120) for f in futures]
    for encoder, prepared in zip(encoders, remote):
        local = encoder.prepare(items[encoder.modalities[0]], encoder.modalities[0])
        np.testing.assert_array_equal(encoder.encode_batch([prepared]), encoder.encode_batch([local]))


def test_stored_params_the_config_does_not_know_are_a_typed_error():
    with pytest.raises(EncoderError, match="stored params .* tempo .* valid params: resolution_ms"):
        encoder_from_stored("pianoroll", json.dumps({"resolution_ms": 100.0, "tempo": True}))
