"""Deep ensembles, temperature scaling and input-free rows in training (the scorer's recipe)."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch.nn import functional as F

from encoders.job import EncodeConfig, run_encode
from featurestore.taxonomy import DIMENSIONS
from fusion import ensemble_train
from fusion.candidates import chromatic_match
from fusion.ensemble import EnsembleModel, fit_temperature, model_checkpoint, model_from_checkpoint
from fusion.errors import ModelError
from fusion.layout import VAL_MIDI_CANDIDATES, VAL_PREDICTIONS
from fusion.model import HEAD_SIZES, FusionConfig, FusionModel
from fusion.presets import SCORER_ENCODING
from fusion.runs import load_run
from fusion.scorer import ChromaticScorer
from fusion.train import TrainConfig, evaluate_run, train
from test_fusion import SPECS, random_inputs
from tinydata import midi_bytes

HEADS = (*DIMENSIONS, "color")
TEMPERATURES = {"temporal": 0.5, "spatial": 1.0, "ontological": 1.7, "color": 2.5}


def tiny_ensemble(members=3) -> EnsembleModel:
    torch.manual_seed(0)
    config = FusionConfig(SPECS, embed_dim=16, hidden_dims=(32, 16), cnn_channels=(4, 8))
    model = EnsembleModel(config, members)
    model.set_temperatures(TEMPERATURES)
    return model.eval()


def test_ensemble_output_is_the_mean_of_its_tempered_members():
    model = tiny_ensemble()
    inputs = random_inputs(6, seed=3)
    inputs[3] = torch.tensor([True, False, True, False, True, False])  # some MIDI absent
    with torch.no_grad():
        outputs = dict(zip(HEADS, model(*inputs)))
        members = [member.forward_logits(*inputs)[0] for member in model.members]
        for head in HEADS:
            expected = torch.stack([F.softmax(m[head] / TEMPERATURES[head], dim=-1) for m in members]).mean(0)
            torch.testing.assert_close(outputs[head], expected, atol=1e-6, rtol=1e-5)
        assert not torch.allclose(members[0]["color"], members[1]["color"])  # independently initialised


def test_checkpoints_round_trip_ensembles_and_single_models():
    model = tiny_ensemble(members=2)
    inputs = random_inputs(4, seed=5)
    loaded = model_from_checkpoint(model_checkpoint(model)).eval()
    assert isinstance(loaded, EnsembleModel) and len(loaded.members) == 2
    assert loaded.temperature_dict() == pytest.approx(TEMPERATURES)
    with torch.no_grad():
        for a, b in zip(model(*inputs), loaded(*inputs)):
            torch.testing.assert_close(a, b)
    single = model_from_checkpoint(model_checkpoint(model.members[0]))
    assert type(single) is FusionModel


def test_fit_temperature_undoes_a_known_over_confidence():
    gen = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 9, generator=gen)
    labels = torch.multinomial(F.softmax(true_logits, dim=-1), 1, generator=gen).squeeze(1)
    assert fit_temperature(3.0 * true_logits, labels) == pytest.approx(3.0, rel=0.1)
    soft = F.softmax(true_logits, dim=-1)  # soft targets (the mode heads): the exact answer is T = 0.5
    assert fit_temperature(0.5 * true_logits, soft) == pytest.approx(0.5, rel=0.03)
    assert fit_temperature(torch.zeros(0, 9), torch.zeros(0, dtype=torch.long)) == 1.0


def test_calibration_needs_held_out_members():
    with pytest.raises(ModelError, match="calibrate needs members > 1"):
        TrainConfig(calibrate=True, members=1)
    with pytest.raises(ModelError, match="members"):
        TrainConfig(members=0)


@pytest.fixture(scope="module")
def scorer_run(tmp_path_factory):
    """A MIDI-only midistats ensemble of 2 members, on input rows only, with a colour temperature of 2.5."""
    from tinydata import build_tiny_store

    store = build_tiny_store(tmp_path_factory.mktemp("ensemble") / "store")
    encoder, version, params = SCORER_ENCODING
    run_encode(store, EncodeConfig(encoder, version, params, workers=0))
    fitted = {}

    def fixed_temperature(logits, targets):  # a temperature the tiny data would not find by itself
        fitted[len(fitted)] = len(logits)
        return 2.5 if logits.shape[-1] == HEAD_SIZES["color"] else 1.0

    patch = pytest.MonkeyPatch()
    patch.setattr(ensemble_train, "fit_temperature", fixed_temperature)
    try:
        config = TrainConfig(epochs=3, batch_size=16, threads=1, skip_inputless=True, members=2, calibrate=True)
        result = train(store, {"midi": "midistats:v1"}, config)
    finally:
        patch.undo()
    return store, result, fitted


def test_inputless_rows_are_skipped_with_a_reason_and_counted(scorer_run):
    store, result, _ = scorer_run
    summary = json.loads((result.run_dir / "manifest.json").read_text())["data"]
    segments = store.read("segments").to_pylist()
    without_midi = {r["segment_id"] for r in segments if not r["has_midi"]}
    assert without_midi  # the tiny corpus has rows without MIDI
    skipped = {s["segment_id"] for s in summary["skipped"] if s["reason"].startswith("no input present")}
    assert skipped == without_midi
    assert summary["skipped_by_reason"]["no input present"] == len(without_midi)
    assert summary["train"] + summary["val"] == len(segments) - len(without_midi)
    val = pq.read_table(result.run_dir / VAL_PREDICTIONS).to_pylist()
    assert val and all(row["midi_mask"] for row in val)


def test_eval_rebuilds_the_ensemble_and_its_input_rows(scorer_run):
    store, result, _ = scorer_run
    again = evaluate_run(store, result.run_id)
    assert again.metrics["overall"] == pytest.approx(result.metrics["overall"])
    assert again.metrics["fitness"]["midi_candidates"]["color_ece"] == pytest.approx(
        result.metrics["fitness"]["midi_candidates"]["color_ece"])


def test_temperature_is_fitted_out_of_fold_stored_and_used_by_the_scorer(scorer_run):
    store, result, fitted = scorer_run
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["ensemble"] == {"members": 2, "temperatures": {**{d: 1.0 for d in DIMENSIONS}, "color": 2.5}}
    calibration = result.metrics["calibration"]
    assert calibration["temperatures"]["color"] == 2.5
    assert set(fitted.values()) == {calibration["fitted_on_rows"]} and calibration["fitted_on_rows"] == \
        result.summary["train"]  # every training row once: each predicted by the member that held it out
    assert calibration["cand_color_ece_uncalibrated"] is not None
    assert len(manifest["best_epoch"]) == 2 and manifest["export"]["parity_max_abs_diff"] <= 1e-4
    refit = [row for row in result.history if row.get("refit")]  # the kept members: every training row
    assert len(refit) == 2 * max(1, int(np.median(manifest["best_epoch"]))) and "val_loss" not in refit[0]

    view = pq.read_table(result.run_dir / VAL_MIDI_CANDIDATES).to_pylist()
    rows = {r["segment_id"]: r["midi"] for r in store.read("media").to_pylist()}
    scorer = ChromaticScorer(result.run_dir)
    results = {r.id: r for r in scorer.score_batch([{"id": v["segment_id"], "midi": rows[v["segment_id"]]}
                                                    for v in view], "Green")}
    expected, _ = chromatic_match({h: np.array([v[f"{h}_probs"] for v in view]) for h in HEADS}, "Green")
    for v, match in zip(view, expected):
        assert results[v["segment_id"]].match == pytest.approx(float(match), abs=1e-5)
        np.testing.assert_allclose(list(results[v["segment_id"]].color.values()), v["color_probs"], atol=1e-4)

    model = load_run(store, result.run_id).model
    assert model.temperature_dict()["color"] == 2.5
    candidate = {"midi": midi_bytes([(60, 0, 1, 90), (64, 1, 1, 80)])}
    tempered = scorer.score_batch([candidate], "Red")[0].color
    model.set_temperatures({})  # all 1: sharper than T = 2.5
    assert max(tempered.values()) < max(_torch_color(model, scorer, candidate))


def _torch_color(model, scorer, candidate) -> list[float]:
    [vector] = scorer.encoder("midi").encode([_encoder_input(candidate)], "midi")
    values = torch.as_tensor(np.asarray(vector, dtype=np.float32)).reshape(1, -1)
    with torch.no_grad():
        return model(values, torch.ones(1, dtype=torch.bool))[3][0].tolist()


def _encoder_input(candidate):
    from fusion.candidates import as_candidate, encoder_input

    return encoder_input(as_candidate(candidate, 0), "midi")


def test_progress_lines_name_members_and_refits_without_validation():
    from render.training import _epoch_line

    inner = {"epoch": 3, "train_loss": 1.0, "val_loss": 1.2, "val_mode_acc": 0.5, "val_color_acc": None,
             "seconds": 0.1, "member": 1}
    assert _epoch_line(inner, 30).startswith("member 1  epoch   3/30") and "colour acc   n/a%" in _epoch_line(inner, 30)
    refit = {"epoch": 4, "train_loss": 0.9, "seconds": 0.1, "member": 0, "refit": True}
    assert _epoch_line(refit, 30) == "member 0 refit  epoch   4/30  train loss 0.9000  0.1s"
