"""The temporal piano-roll encoders (fusion/roll_encoders.py): musical invariants, per-sample
independence, ONNX export and the scorer round trip of a MIDI-only run trained with them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from encoders.job import EncodeConfig, run_encode
from featurestore.schemas import MEDIA
from featurestore.taxonomy import DIMENSIONS
from fusion.candidates import chromatic_match
from fusion.errors import ModelError
from fusion.export import export_info
from fusion.layout import VAL_MIDI_CANDIDATES
from fusion.model import FusionConfig, FusionModel, InputSpec
from fusion.roll_encoders import TemporalRollEncoder, fold_chroma, onsets, sounding_steps
from fusion.scorer import ChromaticScorer
from fusion.train import TrainConfig, train
from tinydata import build_tiny_store

TEMPORAL = ("conv1d", "chroma")


def random_rolls(batch: int, pitches: int = 128, steps: int = 40, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, pitches, steps, generator=gen) > 0.9).float() * torch.rand(batch, 1, 1, generator=gen)


def encoder(fold: bool, time_pool: int = 2) -> TemporalRollEncoder:
    torch.manual_seed(0)
    return TemporalRollEncoder(128, 16, fold, time_pool, width=8).eval()


def test_fold_chroma_puts_each_note_in_its_pitch_class_and_octave():
    roll = torch.zeros(1, 128, 3)
    roll[0, 60, 0] = 1.0  # C4: pitch class 0, octave band 5
    roll[0, 76, 1] = 0.5  # E5: pitch class 4, octave band 6
    roll[0, 127, 2] = 0.25  # G9: the top, partial band 10
    folded = fold_chroma(roll)[0]
    assert folded.shape == (12 + 11, 3)
    expected = torch.zeros(23, 3)
    expected[0, 0] = expected[12 + 5, 0] = 1.0
    expected[4, 1] = expected[12 + 6, 1] = 0.5
    expected[7, 2] = expected[12 + 10, 2] = 0.25
    assert torch.equal(folded, expected)


def test_onsets_mark_rises_only():
    roll = torch.tensor([[[0.0, 0.5, 0.5, 0.0, 0.8, 1.0]]])
    assert torch.allclose(onsets(roll), torch.tensor([[[0.0, 0.5, 0.0, 0.0, 0.8, 0.2]]]))
    assert torch.equal(onsets(torch.ones(1, 1, 3))[0, 0], torch.tensor([1.0, 0.0, 0.0]))  # sounding from step 0


def test_sounding_steps_end_at_the_last_note_and_keep_one_step_of_silence():
    roll = torch.zeros(2, 4, 6)
    roll[0, 2, 3] = 1.0
    assert sounding_steps(roll)[:, 0].tolist() == [[1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0]]


@pytest.mark.parametrize("fold", [False, True])
def test_trailing_silence_does_not_change_the_embedding(fold):
    """A roll is padded with silence past its segment's end: that padding must not move the summary."""
    model, rolls = encoder(fold), random_rolls(3, steps=40)
    rolls[:, :, 30:] = 0  # the segment ends at step 30
    longer = torch.cat([rolls, torch.zeros(3, 128, 40)], dim=-1)
    with torch.no_grad():
        assert torch.allclose(model(rolls), model(longer), atol=1e-5)


@pytest.mark.parametrize("fold", [False, True])
def test_a_sample_does_not_depend_on_its_batch(fold):
    model, rolls = encoder(fold), random_rolls(6, seed=3)
    with torch.no_grad():
        together = model(rolls)
        alone = torch.cat([model(rolls[i : i + 1]) for i in range(len(rolls))])
    assert torch.allclose(together, alone, atol=1e-5)


def test_chroma_folds_octave_transpositions_onto_the_same_pitch_classes():
    """An octave shift moves only the register block; the pitch-class block is unchanged."""
    rolls = random_rolls(2, seed=5)
    rolls[:, 116:] = 0  # keep room to shift up an octave
    shifted = torch.roll(rolls, 12, dims=1)
    a, b = fold_chroma(rolls), fold_chroma(shifted)
    assert torch.equal(a[:, :12], b[:, :12]) and not torch.equal(a[:, 12:], b[:, 12:])


def test_unknown_tensor_encoder_is_refused():
    with pytest.raises(ModelError, match="unknown tensor encoder 'lstm'"):
        FusionConfig((InputSpec("midi", "tensor", (128, 16)),), tensor_encoder="lstm")
    with pytest.raises(ModelError, match="expected one of cnn2d, conv1d, chroma"):
        TrainConfig(tensor_encoder="lstm")


@pytest.mark.parametrize("name", TEMPORAL)
def test_config_round_trip_rebuilds_the_same_encoder(name):
    config = FusionConfig((InputSpec("midi", "tensor", (128, 16)),), embed_dim=16, tensor_encoder=name)
    again = FusionConfig.from_dict(config.to_dict())
    assert again == config
    assert isinstance(FusionModel(again).encoders[0], TemporalRollEncoder)


@pytest.fixture(scope="module", params=TEMPORAL)
def midi_run(request, tmp_path_factory):
    """A MIDI-only run with a temporal roll encoder on the tiny store, exported to ONNX (parity-checked)."""
    store = build_tiny_store(tmp_path_factory.mktemp(f"roll-{request.param}") / "store")
    params = {"steps": "32", "resolution_ms": "100"}
    run_encode(store, EncodeConfig("pianoroll", "v1", params=params, workers=0, batch_size=64))
    config = TrainConfig(epochs=2, batch_size=16, seed=0, threads=1, tensor_encoder=request.param)
    return store, train(store, {"midi": "pianoroll:v1"}, config)


def test_temporal_run_exports_and_the_scorer_matches_the_midi_candidate_view(midi_run):
    store, result = midi_run
    assert export_info(result.run_dir)["parity_max_abs_diff"] <= 1e-4
    view = pq.read_table(result.run_dir / VAL_MIDI_CANDIDATES).to_pylist()
    midi = {r["segment_id"]: r["midi"] for r in store.read(MEDIA).to_pylist()}
    candidates = [{"id": v["segment_id"], "midi": midi[v["segment_id"]]} for v in view]
    results = {r.id: r for r in ChromaticScorer(result.run_dir).score_batch(candidates, "Green")}
    expected, _ = chromatic_match({h: np.array([v[f"{h}_probs"] for v in view]) for h in (*DIMENSIONS, "color")},
                                  "Green")
    assert view
    for v, match in zip(view, expected):
        assert results[v["segment_id"]].error is None
        assert results[v["segment_id"]].match == pytest.approx(float(match), abs=1e-5)


def test_cli_train_takes_the_tensor_encoder_and_refuses_an_unknown_one(tiny_store):
    from typer.testing import CliRunner

    from cli import app

    run_encode(tiny_store, EncodeConfig("pianoroll", "v1", params={"steps": "32"}, workers=0))
    runner = CliRunner()
    common = ["train", "--midi", "pianoroll:v1", "--epochs", "1", "--store", tiny_store.uri]
    done = runner.invoke(app, [*common, "--tensor-encoder", "chroma", "--json"])
    assert done.exit_code == 0, done.output
    manifest = json.loads((Path(json.loads(done.stdout)["run_dir"]) / "manifest.json").read_text())
    assert manifest["model"]["tensor_encoder"] == "chroma" and manifest["training"]["tensor_encoder"] == "chroma"
    refused = runner.invoke(app, [*common, "--tensor-encoder", "lstm"])
    assert refused.exit_code == 2 and "unknown tensor encoder 'lstm'" in refused.output


def test_chroma_keeps_a_separate_drum_block_out_of_the_pitch_classes():
    roll = torch.zeros(1, 256, 2)
    roll[0, 128 + 38, 0] = 1.0  # a snare (GM 38) in the drum block of `drums=separate`
    roll[0, 62, 1] = 1.0  # D4: pitch class 2
    folded = fold_chroma(roll)[0]
    assert folded.shape == (12 + 11 + 128, 2)
    assert folded[:23, 0].sum() == 0 and folded[23 + 38, 0] == 1.0  # not pitch class 2
    assert folded[2, 1] == 1.0 and folded[23:, 1].sum() == 0
    with torch.no_grad():
        assert TemporalRollEncoder(256, 16, True, 2, width=8)(roll).shape == (1, 16)
