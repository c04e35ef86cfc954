"""Fitness-function metrics (ranking AUC, calibration, collapse), song folds and their aggregation."""

import numpy as np
import pytest

from featurestore.errors import ModelError
from featurestore.taxonomy import COLORS, DIMENSIONS, MODES
from fusion.dataset import song_folds, split_by_song
from fusion.folds import aggregate, mean_sd_text, run_summary
from fusion.metrics import compute_metrics
from fusion.quality import (
    collapse_reasons,
    expected_calibration_error,
    match_spread,
    per_color_auc,
    ranking_auc,
    roc_auc,
)
from test_metrics import make_predictions


def colour_probs(rows: list[dict[str, float]]) -> np.ndarray:
    """[N, 9] colour probabilities: the given ones, the rest of the mass spread over the other colours."""
    out = np.zeros((len(rows), len(COLORS)))
    for i, given in enumerate(rows):
        rest = (1 - sum(given.values())) / (len(COLORS) - len(given))
        out[i] = [given.get(c, rest) for c in COLORS]
    return out


def uniform_modes(n: int) -> dict[str, np.ndarray]:
    return {d: np.full((n, len(MODES[d])), 1 / len(MODES[d])) for d in DIMENSIONS}


def test_roc_auc_counts_pairs_and_half_ties():
    # Positives 0.9 and 0.4 against negatives 0.8, 0.4, 0.1: 3 + (0 + 0.5 + 1) = 4.5 of 6 pairs.
    scores = np.array([0.9, 0.8, 0.4, 0.4, 0.1])
    positive = np.array([True, False, True, False, False])
    assert roc_auc(scores, positive) == pytest.approx(0.75)
    assert roc_auc(np.ones(4), np.array([True, False, True, False])) == 0.5  # a constant ranks nothing
    assert roc_auc(scores, np.zeros(5, dtype=bool)) is None


def test_ranking_auc_averages_the_target_colours_present():
    # Modes uniform, so for any target the match is a constant plus half p(target): it ranks by p(target).
    probs = {**uniform_modes(3), "color": colour_probs([
        {"Red": 0.7, "Blue": 0.1}, {"Red": 0.2, "Blue": 0.3}, {"Red": 0.3, "Blue": 0.4}])}
    colors = np.array(["Red", "Red", "Blue"])
    # Red: 0.7 > 0.3 but 0.2 < 0.3 -> 1/2. Blue: 0.4 beats 0.1 and 0.3 -> 1. Other colours have no rows.
    assert per_color_auc(probs, colors) == {"Red": 0.5, "Blue": 1.0}
    assert ranking_auc(probs, colors) == pytest.approx(0.75)


def test_expected_calibration_error_by_hand():
    probs = colour_probs([{"Red": 0.95}, {"Red": 0.85}, {"Blue": 0.55}, {"Blue": 0.52}])
    targets = np.array([COLORS.index(c) for c in ("Red", "Blue", "Blue", "Red")])
    # Bins (0.9, 1]: 1 right at 0.95; (0.8, 0.9]: 1 wrong at 0.85; (0.5, 0.6]: 1 of 2 right at mean 0.535.
    expected = 0.25 * 0.05 + 0.25 * 0.85 + 0.5 * abs(0.5 - 0.535)
    assert expected_calibration_error(probs, targets) == pytest.approx(expected)
    assert expected_calibration_error(probs[:0], targets[:0]) is None


def test_constant_predictions_are_flagged_as_collapsed_and_varied_ones_are_not():
    colors = ["Red", "Orange", "Yellow", "Green", "Blue", "Indigo"]
    constant = make_predictions(colors, predicted_colors=["Red"] * 6)
    constant.probs = {h: np.repeat(p[:1], 6, axis=0) for h, p in constant.probs.items()}
    reasons = collapse_reasons(constant.probs, constant.colors)
    assert len(reasons) == 2 and "only Red" in reasons[0] and "varies by at most 0.0000" in reasons[1]
    assert match_spread(constant.probs) == 0.0
    healthy = make_predictions(colors)
    assert collapse_reasons(healthy.probs, healthy.colors) == []
    metrics = compute_metrics(healthy, candidates=constant)
    assert metrics["collapsed"] and metrics["fitness"]["midi_candidates"]["collapse"] == reasons
    assert metrics["fitness"]["full"]["collapse"] == [] and metrics["fitness"]["full"]["ranking_auc"] == 1.0
    assert not compute_metrics(healthy)["collapsed"] and compute_metrics(healthy)["fitness"]["midi_candidates"] is None


def songs_and_colours(n_songs: int = 23, segments: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    song_colour = {f"song{i}": COLORS[i % 7] for i in range(n_songs)}
    song_ids = np.array([s for s in song_colour for _ in range(segments)], dtype=object)
    return rng.permutation(song_ids), song_colour


@pytest.mark.parametrize("folds", [2, 3, 5])
def test_folds_never_share_a_song_and_cover_every_song_once(folds):
    song_ids, song_colour = songs_and_colours()
    colors = np.array([song_colour[s] for s in song_ids], dtype=object)
    splits = song_folds(song_ids, colors, folds, seed=4)
    assert len(splits) == folds
    val_songs = [set(song_ids[val]) for _, val in splits]
    for k, (train_idx, val_idx) in enumerate(splits):
        assert not set(song_ids[train_idx]) & val_songs[k]
        assert sorted(np.r_[train_idx, val_idx]) == list(range(len(song_ids)))
        assert all(not val_songs[k] & val_songs[j] for j in range(folds) if j != k)
    assert set().union(*val_songs) == set(song_colour)
    # Stratified: each colour's songs are spread, no fold holds two more of a colour than another.
    for colour in set(song_colour.values()):
        counts = [sum(song_colour[s] == colour for s in songs) for songs in val_songs]
        assert max(counts) - min(counts) <= 1
    assert song_folds(song_ids, colors, folds, seed=4)[0][1].tolist() == splits[0][1].tolist()  # seeded


def test_bad_fold_counts_are_refused():
    song_ids, song_colour = songs_and_colours(n_songs=4)
    colors = np.array([song_colour[s] for s in song_ids], dtype=object)
    for folds in (1, 5):
        with pytest.raises(ModelError, match="song folds"):
            song_folds(song_ids, colors, folds, seed=0)
    train_idx, val_idx = split_by_song(song_ids, colors, 0.2, 0)  # --folds 1 stays the held-out split
    assert not set(song_ids[train_idx]) & set(song_ids[val_idx])


def test_fold_aggregate_is_mean_and_sample_sd_with_counts_summed():
    folds = []
    for acc, n in ((0.5, 10), (0.7, 12), (0.9, 8)):
        metrics = compute_metrics(make_predictions(["Red", "Blue"]))
        metrics["overall"].update(color_acc=acc, n=n)
        folds.append(run_summary(metrics))
    summary = aggregate(folds)
    assert summary["folds"] == 3 and summary["n"] == 30 and summary["collapsed"] == 0
    assert summary["color_acc"] == pytest.approx(0.7) and summary["color_acc_sd"] == pytest.approx(0.2)
    assert summary["cand_color_acc"] is None  # no fold has a MIDI-candidate view
    assert aggregate(folds[:1])["color_acc_sd"] is None
    assert mean_sd_text(0.7, 0.2) == "0.700 ± 0.200" and mean_sd_text(0.7, None) == "0.700"
