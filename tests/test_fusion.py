import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from featurestore.join import join
from featurestore.registry import list_model_records
from featurestore.schemas import SEGMENTS, SEGMENTS_SCHEMA
from featurestore.taxonomy import COLORS
from fusion.dataset import build_dataset, split_by_song
from fusion.errors import ModelError
from fusion.model import FusionConfig, FusionModel, InputSpec, modality_dropout
from fusion.runs import load_run
from fusion.train import TrainConfig, evaluate_run, train
from test_join import colour_vectors, write_feature_table

SPECS = (InputSpec("audio", "vector", (12,)), InputSpec("midi", "tensor", (16, 24)), InputSpec("lyrics", "vector", (8,)))


def tiny_model(fusion="concat", **overrides) -> FusionModel:
    torch.manual_seed(0)
    config = FusionConfig(SPECS, embed_dim=16, hidden_dims=(32, 16), fusion=fusion, cnn_channels=(4, 8), **overrides)
    return FusionModel(config)


def random_inputs(batch, present=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for spec in SPECS:
        out += [torch.randn(batch, *spec.shape, generator=gen), torch.full((batch,), present, dtype=torch.bool)]
    return out


@pytest.fixture
def feature_store(tiny_store):
    write_feature_table(tiny_store, "audio", "fake:v1", colour_vectors(tiny_store, (12,), keep=0.85, scale=2), (12,))
    roll = colour_vectors(tiny_store, (16, 24), keep=0.5, seed=1)
    write_feature_table(tiny_store, "midi", "roll:v1", roll, (16, 24), kind="tensor", dtype="float16")
    write_feature_table(tiny_store, "lyrics", "fake:v1", colour_vectors(tiny_store, (8,), keep=0.6, seed=2), (8,))
    return tiny_store


INPUTS = {"audio": "fake:v1", "midi": "roll:v1", "lyrics": "fake:v1"}


@pytest.mark.parametrize("fusion", ["concat", "gated"])
def test_masked_input_values_have_no_influence(fusion):
    model = tiny_model(fusion).eval()
    a, b = random_inputs(5, seed=1), random_inputs(5, seed=2)
    for i in range(len(SPECS)):
        masked_a, masked_b = list(a), list(a)
        masked_a[2 * i + 1] = masked_b[2 * i + 1] = torch.zeros(5, dtype=torch.bool)
        masked_b[2 * i] = b[2 * i]  # other values under the mask
        for out_a, out_b in zip(model(*masked_a), model(*masked_b)):
            assert torch.equal(out_a, out_b)
    assert not torch.allclose(model(*a)[3], model(*b)[3])  # unmasked values do matter


def test_export_path_equals_eager_path_and_training_without_dropout():
    model = tiny_model(dropout=0.0, modality_dropout=0.0)
    inputs = random_inputs(6)
    inputs[3] = torch.tensor([True, False, True, False, False, True])  # midi partly absent
    model.train()
    train_logits, _ = model.forward_logits(*inputs)
    model.eval()
    eager = model(*inputs)
    model.encode_all_rows = True  # what an exported (ONNX) graph computes
    exported = model(*inputs)
    inputs[2] = torch.randn(6, *SPECS[1].shape)
    inputs[2][inputs[3]] = random_inputs(6)[2][inputs[3]]  # new values only under the mask
    for ours, theirs in zip(eager, exported):
        torch.testing.assert_close(ours, theirs)
    for ours, theirs in zip(exported, model(*inputs)):
        assert torch.equal(ours, theirs)
    for head, probs in zip(train_logits, eager):
        torch.testing.assert_close(torch.softmax(train_logits[head], -1), probs)


def test_each_sample_is_independent_of_its_batch():
    model = tiny_model("gated").eval()
    inputs = random_inputs(7)
    inputs[1] = torch.tensor([True, False, True, True, False, True, True])
    batched = model(*inputs)
    for row in range(7):
        alone = model(*[t[row : row + 1] for t in inputs])
        for out_batch, out_alone in zip(batched, alone):
            torch.testing.assert_close(out_batch[row : row + 1], out_alone, rtol=1e-5, atol=1e-6)
    probs = batched[:4]
    assert all(torch.allclose(p.sum(-1), torch.ones(7)) for p in probs)
    assert batched[3].shape == (7, len(COLORS))


def test_modality_dropout_never_drops_every_present_input():
    torch.manual_seed(0)
    masks = [torch.rand(2000) < 0.5 for _ in range(3)]
    dropped = modality_dropout(masks, 0.9)
    before, after = torch.stack(masks, 1), torch.stack(dropped, 1)
    assert not (after & ~before).any()  # never invents an input
    assert torch.equal(after.any(1), before.any(1))
    assert after.sum() < before.sum()


def test_split_by_song_is_disjoint_seeded_and_stratified():
    songs = np.array([f"{c}-{s}" for c in COLORS for s in range(5) for _ in range(4)], dtype=object)
    colors = np.array([s.split("-")[0] for s in songs], dtype=object)
    train_idx, val_idx = split_by_song(songs, colors, 0.2, seed=3)
    assert set(songs[train_idx]).isdisjoint(songs[val_idx])
    assert len(train_idx) + len(val_idx) == len(songs)
    assert set(colors[val_idx]) == set(COLORS)  # each colour has one of its 5 songs in validation
    again = split_by_song(songs, colors, 0.2, seed=3)
    assert np.array_equal(again[1], val_idx)
    assert any(not np.array_equal(split_by_song(songs, colors, 0.2, seed=s)[1], val_idx) for s in range(4, 8))


def test_dataset_targets_and_bad_labels_are_reported(feature_store):
    bad = feature_store.read(SEGMENTS).slice(0, 1).to_pylist()[0]
    bad.update(segment_id="bad-seg", color="Magenta")
    feature_store.upsert(SEGMENTS, pa.Table.from_pylist([bad], schema=SEGMENTS_SCHEMA))
    data = build_dataset(join(feature_store, INPUTS))
    assert [sid for sid, _ in data.skipped] == ["bad-seg"]
    assert "Magenta" in data.skipped[0][1] and "bad-seg" not in data.segment_ids
    assert len(data) == feature_store.count(SEGMENTS) - 1
    indigo = np.flatnonzero(data.colors == "Indigo")[0]
    np.testing.assert_allclose(data.soft_targets["ontological"][indigo], [0.2, 0.4, 0.4])
    assert data.mode_targets["ontological"][indigo] == -1 and data.mode_targets["temporal"][indigo] == -1
    assert data.values["midi"].dtype == np.float16 and data.values["audio"].dtype == np.float32


def test_train_writes_a_run_and_eval_reproduces_it(feature_store):
    progress = []
    config = TrainConfig(epochs=4, batch_size=16, patience=2, seed=0, fusion="gated", export_onnx=False)
    result = train(feature_store, INPUTS, config, progress=progress.append)
    assert [row["epoch"] for row in progress] == [row["epoch"] for row in result.history]
    names = {p.name for p in result.run_dir.iterdir()}
    assert {"model.pt", "manifest.json", "metrics.json", "history.json", "val_predictions.parquet", "report.png"} <= names
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == ["audio", "midi", "lyrics"]
    assert manifest["lance_versions"]["midi.roll.v1"] == feature_store.version("midi.roll.v1")
    assert manifest["input_names"][:2] == ["audio_values", "audio_mask"]
    assert manifest["labels"]["color"] == list(COLORS)
    records = list_model_records(feature_store)
    assert [r.run_id for r in records] == [result.run_id]
    assert records[0].feature_tables == {t: v for t, v in manifest["lance_versions"].items() if t != SEGMENTS}
    val_pred = pq.read_table(result.run_dir / "val_predictions.parquet")
    assert val_pred.num_rows == result.metrics["overall"]["n"] == result.summary["val"]
    assert set(val_pred.column("song_id").to_pylist()) == set(manifest["split"]["val_songs"])
    assert result.summary["train"] + result.summary["val"] == feature_store.count(SEGMENTS)
    run = load_run(feature_store, result.run_id)
    assert not run.model.training and run.model.config.fusion == "gated"

    evaluated = evaluate_run(feature_store, result.run_id)
    assert evaluated.metrics == result.metrics and evaluated.moved_tables == {}
    # New rows in a table the run read: eval still uses the recorded version, and says it moved.
    write_feature_table(feature_store, "audio", "fake:v1", colour_vectors(feature_store, (12,), seed=9), (12,))
    evaluated = evaluate_run(feature_store, result.run_id)
    recorded, current = evaluated.moved_tables["audio.fake.v1"]
    assert recorded == manifest["lance_versions"]["audio.fake.v1"] < current
    assert evaluated.metrics == result.metrics


def test_bad_config_and_unknown_run_say_what_to_do(feature_store):
    with pytest.raises(ModelError, match="val_fraction"):
        TrainConfig(val_fraction=1.5)
    with pytest.raises(ModelError, match="concat, gated"):
        TrainConfig(fusion="attention")
    with pytest.raises(ModelError, match="known runs"):
        load_run(feature_store, "run-nope")


def test_fit_without_validation_runs_every_epoch_and_keeps_the_last(feature_store):
    from fusion.train import fit

    data = build_dataset(join(feature_store, {"audio": "fake:v1", "lyrics": "fake:v1"}))
    train_idx, _ = split_by_song(data.song_ids, data.colors, 0.25, 0)
    model = FusionModel(FusionConfig((InputSpec("audio", "vector", (12,)), InputSpec("lyrics", "vector", (8,)))))
    model.fit_input_statistics(data.values, data.masks, train_idx)
    history, best = fit(model, data, train_idx, None, TrainConfig(epochs=3, patience=1, threads=1))
    assert best == 3 and [row["epoch"] for row in history] == [1, 2, 3]  # patience never stops it
    assert all(set(row) == {"epoch", "train_loss", "seconds"} for row in history)


def test_a_feature_constant_in_training_is_ignored_by_the_model_and_its_onnx(feature_store):
    """A candidate may vary where no training row did (drums, an unplayed instrument family): the model never
    learned that feature, so it must read it as on every training row, not as millions of sds off."""
    import onnxruntime

    from fusion.export import parity_inputs
    from fusion.model import Standardize

    scaler = Standardize(3)
    scaler.set_statistics(torch.tensor([[0.0, 1.0, 5.0], [0.0, 3.0, 5.0]]))
    assert scaler(torch.tensor([[0.7, 3.0, 9.0]])).tolist() == [[0.0, 1.0, 0.0]]

    vectors = colour_vectors(feature_store, (12,), keep=0.85, scale=2)
    for vector in vectors.values():
        if vector is not None:
            vector[0] = 0.0  # never varies in the store
    write_feature_table(feature_store, "audio", "flat:v1", vectors, (12,))
    result = train(feature_store, {"audio": "flat:v1"}, TrainConfig(epochs=2, batch_size=16, seed=0))
    session = onnxruntime.InferenceSession(str(result.run_dir / "model.onnx"))
    feeds = dict(zip([i.name for i in session.get_inputs()], parity_inputs(load_run(feature_store, result.run_id).model)))
    base = session.run(None, feeds)
    feeds["audio_values"] = feeds["audio_values"].copy()
    feeds["audio_values"][:, 0] = 0.25
    for before, after in zip(base, session.run(None, feeds)):
        assert np.isfinite(after).all()
        np.testing.assert_array_equal(before, after)
