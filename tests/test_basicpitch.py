"""`basicpitch`: the bundled pretrained transcription network, offline, on pianoroll's grid."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from encoders.base import EncoderInput
from encoders.basicpitch import KEPT_FRAMES, frame_times, posterior_roll
from encoders.media import note_table, decode_midi
from encoders.pianoroll import render_roll, PianoRollConfig
from encoders.registry import build_encoder, encoder_from_stored
from encoders.transcription import frame_counts, onset_counts, roll_notes
from encoders.errors import EncoderError
from featurestore.errors import VersionConflictError
from synth.audio import build_instrument, render
from synth.music import LEAD, PAD, Notes
from synth.styles import Timbre
from tinydata import SAMPLE_RATE, midi_bytes

# A plain, bright, dry timbre: the test pins the network, not the synthesiser's hardest cases.
PLAIN = Timbre(rolloff=1.0, odd_boost=1.0, attack=0.01, decay=0.6, sustain=0.6, noise=0.0,
               reverb_seconds=0.2, reverb_mix=0.05)
# A C-major melody (quarter notes at 120 bpm), then a held C-major chord.
MELODY = [(60 + step, 0.5 * i, 0.5, 90) for i, step in enumerate((0, 2, 4, 5, 7, 5, 4, 2))]
CHORD = [(pitch, 4.0, 2.0, 80) for pitch in (60, 64, 67)]
SECONDS = 6.5


def melody_and_chord() -> tuple[np.ndarray, bytes]:
    notes = MELODY + CHORD
    parts = [LEAD] * len(MELODY) + [PAD] * len(CHORD)
    table = Notes(
        pitch=np.array([n[0] for n in notes]), start=np.array([n[1] for n in notes]),
        end=np.array([n[1] + n[2] for n in notes]), velocity=np.array([n[3] for n in notes]), part=np.array(parts),
    )
    rng = np.random.default_rng(0)
    audio = render(table, SECONDS, build_instrument(PLAIN, SAMPLE_RATE, rng), rng)
    # tinydata writes beats at 120 bpm: one beat is 0.5 s.
    midi = midi_bytes([(p, s * 2, d * 2, v) for p, s, d, v in notes])
    return audio, midi


@pytest.fixture(scope="module")
def rendered():
    return melody_and_chord()


def test_transcribes_a_rendered_melody_and_chord_above_a_floor(rendered):
    audio, midi = rendered
    encoder = build_encoder("basicpitch", {"resolution_ms": "20", "steps": "400"})
    [roll] = encoder.encode([EncoderInput("tune", audio=audio, sample_rate=SAMPLE_RATE)], "audio")
    assert roll.shape == (128, 400) and roll.dtype == np.float16
    assert 0.0 <= roll.min() and roll.max() <= 1.0
    assert not roll[:21].any() and not roll[109:].any()  # outside the piano's keys

    truth = note_table(decode_midi(midi))
    est_intervals, est_pitches = roll_notes(roll, 20.0, min_steps=2)
    onsets = onset_counts(np.stack([truth.start_s, truth.end_s], 1), truth.pitch, est_intervals, est_pitches)
    true_roll = render_roll(truth, PianoRollConfig(resolution_ms=20, steps=400, velocity="binary"))
    frames = frame_counts(true_roll, roll)
    assert onsets.f_measure()["f"] >= 0.9, onsets  # 1.0 when written
    assert frames.f_measure()["f"] >= 0.85, frames  # 0.95 when written


def test_roll_sits_on_pianorolls_grid_and_is_deterministic(rendered):
    audio, midi = rendered
    params = {"resolution_ms": "100", "steps": "256"}
    item = EncoderInput("tune", audio=audio, sample_rate=SAMPLE_RATE)
    first, = build_encoder("basicpitch", params).encode([item], "audio")
    again, = build_encoder("basicpitch", params).encode([item], "audio")
    midi_roll, = build_encoder("pianoroll", params).encode([EncoderInput("tune", midi=midi)], "midi")
    assert first.shape == midi_roll.shape == (128, 256)
    np.testing.assert_array_equal(first, again)
    assert not first[:, 70:].any()  # 6.5 s of audio: steps from 7.0 s on hold nothing


def test_threshold_gives_a_binary_roll_and_resampling_keeps_it(rendered):
    audio, _ = rendered
    encoder = build_encoder("basicpitch", {"threshold": "0.5"})
    at_44k, = encoder.encode([EncoderInput("a", audio=audio, sample_rate=SAMPLE_RATE)], "audio")
    assert set(np.unique(at_44k)) <= {0.0, 1.0}
    assert at_44k.any()


def test_frames_map_onto_steps_by_their_centres():
    times = frame_times(2 * KEPT_FRAMES)
    assert times[0] == 0.0 and times[KEPT_FRAMES] == pytest.approx(36164 / 22050)
    posteriors = np.zeros((2 * KEPT_FRAMES, 88), dtype=np.float32)
    posteriors[100, 39] = 0.9  # frame 100 is centred at 1.161 s: step 11 of a 100 ms grid; key 39 is MIDI 60
    roll = posterior_roll(posteriors, build_encoder("basicpitch").config)
    assert roll[60, 11] == pytest.approx(0.9) and np.count_nonzero(roll) == 1


def test_identity_is_the_weights_file_and_a_changed_file_is_refused(tmp_path, tiny_store):
    from encoders.job import EncodeConfig, run_encode
    from encoders.basicpitch import bundled_model_path

    weights = tmp_path / "nmp.onnx"
    shutil.copy(bundled_model_path(), weights)
    bundled = build_encoder("basicpitch")
    copied = build_encoder("basicpitch", {"model": str(weights)})
    assert bundled.weights_fingerprint() == copied.weights_fingerprint()
    assert bundled.fingerprint() != copied.fingerprint()  # the path is a param

    config = EncodeConfig("basicpitch", "v1", params={"model": str(weights), "steps": "32"}, workers=0, limit=2)
    run_encode(tiny_store, config, progress=False)
    weights.write_bytes(weights.read_bytes() + b"\0")  # same path, other content
    assert build_encoder("basicpitch", {"model": str(weights)}).weights_fingerprint() != bundled.weights_fingerprint()
    with pytest.raises(VersionConflictError):
        run_encode(tiny_store, config, progress=False)


def test_missing_or_broken_weights_say_what_to_do(tmp_path):
    with pytest.raises(EncoderError, match="does not exist"):
        build_encoder("basicpitch", {"model": str(tmp_path / "none.onnx")}).weights_fingerprint()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    encoder = build_encoder("basicpitch", {"model": str(broken)})
    with pytest.raises(EncoderError, match="cannot load"):
        encoder.encode([EncoderInput("a", audio=np.zeros(22050, np.float32), sample_rate=22050)], "audio")
    with pytest.raises(EncoderError, match="threshold"):
        build_encoder("basicpitch", {"threshold": "1.5"})


def test_rebuilt_from_stored_params_has_the_same_fingerprint():
    encoder = build_encoder("basicpitch", {"resolution_ms": "50", "steps": "128"})
    rebuilt = encoder_from_stored("basicpitch", encoder.config.to_json())
    assert rebuilt.fingerprint() == encoder.fingerprint()
    assert json.loads(encoder.config.to_json())["model"] is None
    assert not rebuilt.is_loaded  # building loads no weights


def test_posteriors_equal_basic_pitchs_own_run_inference(rendered, tmp_path):
    import soundfile

    from basic_pitch.inference import run_inference
    from encoders.basicpitch import SAMPLE_RATE as NET_RATE, bundled_model_path, cut_windows, run_network, unwrap
    from encoders.media import load_audio_path, resample

    audio, _ = rendered
    path = tmp_path / "tune.wav"
    soundfile.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
    theirs = run_inference(str(path), str(bundled_model_path()))["note"]
    samples, rate = load_audio_path(path)
    wave = resample(samples, rate, NET_RATE)
    ours = unwrap(run_network(build_encoder("basicpitch").session(), cut_windows(wave)), wave.size)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
