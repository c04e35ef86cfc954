"""How good a model is as a fitness function: ranking, calibration and collapse.

The scorer ranks candidates for a target colour by the chromatic match
(fusion/candidates.py). These metrics judge predictions the way that loop uses
them; numpy only, so they run on any Predictions (fusion/metrics.py).

- ``ranking_auc``: for each target colour present among the rows (with at least
  one row of another colour), the ROC-AUC of the chromatic match to that colour
  separating its rows from the rest; averaged over those colours. Ties count
  one half (the Mann-Whitney statistic). 0.5 is a constant or random ranking.
- ``expected_calibration_error``: the colour head's top probability (confidence)
  is binned into 10 equal-width bins over [0, 1]; ECE = sum over bins of
  (rows in bin / rows) * |accuracy in bin - mean confidence in bin|.
- ``collapse_reasons``: why a model's predictions are degenerate, empty when they
  are not. A model predicting one or two colours for rows of three or more, or
  whose chromatic match hardly moves between rows (largest spread over target
  colours below MATCH_SPREAD_FLOOR), is a constant fitness function: it ranks
  candidates by noise.
"""

from __future__ import annotations

import numpy as np

from featurestore.taxonomy import COLORS
from fusion.candidates import chromatic_match

ECE_BINS = 10
# A piano-roll + concept model that ranked 120 candidates with matches between
# 0.2157 and 0.2160 was useless; a working model's matches span tenths.
MATCH_SPREAD_FLOOR = 0.01
FEW_COLOURS = 2  # predicting at most this many colours for rows of more colours is a collapse


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """P(score of a random positive > score of a random negative), ties half; None without both classes."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    return ranks


def per_color_auc(probs: dict[str, np.ndarray], colors: np.ndarray) -> dict[str, float]:
    """{target colour: ROC-AUC of its chromatic match} for the colours that can be scored."""
    colors = np.asarray(colors, dtype=object)
    out = {}
    for color in COLORS:
        auc = roc_auc(chromatic_match(probs, color)[0], colors == color) if len(colors) else None
        if auc is not None:
            out[color] = auc
    return out


def ranking_auc(probs: dict[str, np.ndarray], colors: np.ndarray) -> float | None:
    """Mean over target colours of `per_color_auc`; None when no colour can be scored."""
    aucs = per_color_auc(probs, colors)
    return float(np.mean(list(aucs.values()))) if aucs else None


def expected_calibration_error(color_probs: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float | None:
    """ECE of the colour head over equal-width confidence bins; None for no rows."""
    color_probs = np.asarray(color_probs, dtype=np.float64)
    if len(color_probs) == 0:
        return None
    confidence = color_probs.max(axis=1)
    correct = color_probs.argmax(axis=1) == np.asarray(targets)
    # Bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of 0 cannot occur (the max of a softmax).
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in np.unique(which):
        in_bin = which == b
        total += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total)


def match_spread(probs: dict[str, np.ndarray]) -> float | None:
    """The largest (max - min) of the chromatic match over rows, over target colours."""
    if len(probs["color"]) == 0:
        return None
    return float(max(np.ptp(chromatic_match(probs, color)[0]) for color in COLORS))


def collapse_reasons(probs: dict[str, np.ndarray], colors: np.ndarray) -> list[str]:
    """Why these predictions make a constant fitness function (see the module doc); [] when they do not."""
    colors = np.asarray(colors, dtype=object)
    if len(colors) == 0:
        return []
    reasons = []
    predicted = sorted({COLORS[i] for i in np.asarray(probs["color"]).argmax(axis=1)})
    true_colours = len(set(colors.tolist()))
    if len(predicted) <= FEW_COLOURS < true_colours:
        reasons.append(f"predicts only {', '.join(predicted)} for {len(colors)} rows of {true_colours} colours")
    spread = match_spread(probs)
    if len(colors) > 1 and spread is not None and spread < MATCH_SPREAD_FLOOR:
        reasons.append(f"chromatic match varies by at most {spread:.4f} across {len(colors)} rows "
                       f"(a constant fitness function; floor {MATCH_SPREAD_FLOOR})")
    return reasons
