import dataclasses
import json

import numpy as np
import pytest

from featurestore.taxonomy import COLORS, DIMENSIONS, MODES, color_index, color_modes, single_mode_index
from fusion.errors import ModelError
from fusion.metrics import (
    METRICS_TABLE_COLUMNS,
    Predictions,
    compute_metrics,
    confusion_matrix,
    macro_f1,
    metrics_table_rows,
    subset_masks,
)
from fusion.report import write_report


def one_hot(indices, width):
    probs = np.full((len(indices), width), 0.05, dtype=np.float32)
    probs[np.arange(len(indices)), indices] = 0.9
    return probs


def make_predictions(colors, predicted_colors=None, predicted_modes=None, present=None):
    """Predictions for rows of true `colors`.

    predicted_modes: dimension -> per-row predicted mode index; by default every
    single-mode row is predicted right and other rows predict mode 0.
    """
    n = len(colors)
    targets = {
        d: np.array([single_mode_index(d, color_modes(c).modes(d)) for c in colors], dtype=np.int64)
        for d in DIMENSIONS
    }
    targets["color"] = np.array([color_index(c) for c in colors], dtype=np.int64)
    predicted_modes = predicted_modes or {}
    probs = {d: one_hot(predicted_modes.get(d, np.maximum(targets[d], 0)), len(MODES[d])) for d in DIMENSIONS}
    chosen = predicted_colors if predicted_colors is not None else list(colors)
    probs["color"] = one_hot([color_index(c) for c in chosen], len(COLORS))
    present = present if present is not None else {"audio": np.ones(n, dtype=bool)}
    return Predictions(
        segment_ids=np.array([f"seg{i}" for i in range(n)]),
        song_ids=np.array([f"song{i // 2}" for i in range(n)]),
        colors=np.array(colors),
        probs=probs,
        targets=targets,
        present={k: np.asarray(v, dtype=bool) for k, v in present.items()},
    )


def test_mode_accuracy_counts_only_single_mode_rows():
    # Black is uniform everywhere, Indigo is uniform/uniform/two-mode: neither has a right answer.
    colors = ["Red", "Red", "Black", "Indigo", "Indigo"]
    past, future = MODES["temporal"].index("Past"), MODES["temporal"].index("Future")
    temporal_guess = [past, future, future, future, future]  # second Red wrong, the rest unscorable
    pred = make_predictions(colors, predicted_modes={"temporal": np.array(temporal_guess)})
    overall = compute_metrics(pred)["overall"]
    assert overall["n"] == 5
    assert overall["temporal_acc"] == pytest.approx(0.5)
    assert overall["spatial_acc"] == pytest.approx(1.0)
    assert overall["ontological_acc"] == pytest.approx(1.0)
    assert overall["mode_acc"] == pytest.approx((0.5 + 1.0 + 1.0) / 3)


def test_block_without_single_mode_rows_reports_none():
    pred = make_predictions(["Black", "White", "Indigo"], predicted_colors=["Black", "Red", "Indigo"])
    overall = compute_metrics(pred)["overall"]
    for key in ("temporal_acc", "spatial_acc", "ontological_acc", "mode_acc"):
        assert overall[key] is None
    assert overall["color_acc"] == pytest.approx(2 / 3)


def test_empty_subset_reports_none_and_zero_rows():
    pred = make_predictions(["Red", "Blue"], present={"audio": [True, True], "lyrics": [True, True]})
    no_lyrics = compute_metrics(pred)["subsets"]["no_lyrics"]
    assert no_lyrics["n"] == 0
    assert all(no_lyrics[key] is None for key in no_lyrics if key != "n")


def test_macro_f1_matches_hand_computation():
    # class 0: P=1/2 R=1/2 F1=1/2; class 1: P=1 R=1 F1=1; class 2: F1=0.
    # Class 5 is only predicted, never true: it is not averaged in.
    assert macro_f1(np.array([0, 0, 1, 1, 2]), np.array([0, 5, 1, 1, 0])) == pytest.approx(0.5)
    assert macro_f1(np.array([], dtype=int), np.array([], dtype=int)) is None


def test_color_macro_f1_in_block():
    colors = ["Red", "Red", "Blue", "Blue", "Green"]
    pred = make_predictions(colors, predicted_colors=["Red", "Violet", "Blue", "Blue", "Red"])
    overall = compute_metrics(pred)["overall"]
    # Red P=1/2 R=1/2; Blue P=1 R=1; Green 0 -> (0.5 + 1 + 0) / 3
    assert overall["color_macro_f1"] == pytest.approx(0.5)
    assert overall["color_acc"] == pytest.approx(3 / 5)


def test_subsets_select_rows_by_presence():
    present = {
        "audio": [True, False, False, True, False],
        "midi": [False, True, True, True, False],
        "lyrics": [False, False, True, True, False],
        "concept": [True, True, True, True, True],
    }
    pred = make_predictions(["Red", "Orange", "Yellow", "Blue", "Violet"], present=present)
    masks = subset_masks(pred)
    assert masks["all"].tolist() == [True] * 5
    assert masks["no_lyrics"].tolist() == [True, True, False, False, True]
    assert masks["no_audio"].tolist() == [False, True, True, False, True]
    assert masks["no_midi"].tolist() == [True, False, False, False, True]
    assert masks["audio_only"].tolist() == [True, False, False, False, False]
    assert masks["midi_only"].tolist() == [False, True, False, False, False]
    assert masks["text_only"].tolist() == [False, False, False, False, True]
    subsets = compute_metrics(pred)["subsets"]
    assert {name: block["n"] for name, block in subsets.items()} == {
        name: int(mask.sum()) for name, mask in masks.items()
    }


def test_subsets_follow_the_inputs_of_the_model():
    midi_only_model = make_predictions(["Red", "Blue"], present={"midi": [True, False]})
    masks = subset_masks(midi_only_model)
    assert set(masks) == {"all", "no_lyrics", "no_midi", "midi_only"}
    # Lyrics is not an input, so no row has lyrics.
    assert masks["no_lyrics"].tolist() == [True, True]


def test_no_lyrics_uses_the_segments_own_lyrics_whatever_the_inputs():
    # A model without a lyrics input is still measured on the segments that have
    # no lyrics, so models in a compare share the no-lyrics rows.
    pred = make_predictions(["Red", "Blue", "Green"], present={"midi": [True, True, False]})
    pred = dataclasses.replace(pred, has_lyrics=np.array([True, False, False]))
    assert subset_masks(pred)["no_lyrics"].tolist() == [False, True, True]
    assert compute_metrics(pred)["subsets"]["no_lyrics"]["n"] == 2
    assert pred.select(np.array([True, False, True])).has_lyrics.tolist() == [True, False]


def test_per_color_blocks_cover_only_present_colors():
    colors = ["Red", "Red", "Blue", "Black"]
    pred = make_predictions(colors, predicted_colors=["Red", "Orange", "Blue", "White"])
    per_color = compute_metrics(pred)["per_color"]
    assert list(per_color) == ["Black", "Red", "Blue"]  # taxonomy order
    assert per_color["Red"]["n"] == 2 and per_color["Red"]["color_acc"] == pytest.approx(0.5)
    assert per_color["Blue"]["color_acc"] == pytest.approx(1.0)
    assert per_color["Black"]["mode_acc"] is None


def test_metrics_are_json_serialisable_and_tabulate():
    pred = make_predictions(["Red", "Green", "Black"], present={"audio": [True, True, False]})
    metrics = compute_metrics(pred)
    assert json.loads(json.dumps(metrics)) == metrics
    rows = metrics_table_rows(metrics)
    assert rows[0][0] == "overall"
    assert all(len(row) == len(METRICS_TABLE_COLUMNS) for row in rows)
    assert len(rows) == 1 + (len(metrics["subsets"]) - 1) + len(metrics["per_color"])


def test_confusion_matrix_skips_rows_without_a_right_answer():
    matrix = confusion_matrix(np.array([0, 0, 1, -1, 2]), np.array([0, 1, 1, 2, 0]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_predictions_refuse_misaligned_arrays():
    pred = make_predictions(["Red", "Blue"])
    with pytest.raises(ModelError, match="length"):
        Predictions(pred.segment_ids, pred.song_ids[:1], pred.colors, pred.probs, pred.targets, pred.present)
    with pytest.raises(ModelError, match="color"):
        Predictions(pred.segment_ids, pred.song_ids, pred.colors, {}, pred.targets, pred.present)


def test_report_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    colors = [COLORS[i] for i in rng.integers(0, len(COLORS), 60)]
    guesses = [c if rng.random() < 0.6 else COLORS[rng.integers(0, len(COLORS))] for c in colors]
    present = {"audio": rng.random(60) < 0.8, "midi": rng.random(60) < 0.5, "lyrics": rng.random(60) < 0.6}
    pred = make_predictions(colors, predicted_colors=guesses, present=present)
    history = [
        {"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.2 / e, "val_mode_acc": 0.3 + 0.1 * e,
         "val_color_acc": 0.2 + 0.1 * e, "seconds": 0.1}
        for e in range(1, 5)
    ]
    path = write_report(tmp_path / "run" / "report.png", history, pred, compute_metrics(pred))
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
