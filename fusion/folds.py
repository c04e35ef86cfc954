"""One line of numbers per run, and their mean ± standard deviation over folds.

`compare --folds K` and `eval RUN RUN ...` summarise each run's metrics.json
with `run_summary` and combine the K summaries with `aggregate`: the mean of
each number over the folds that have it, and its sample standard deviation
(ddof=1; None for a single fold). Row counts are summed instead: they say how
many validation rows the means stand on.
"""

from __future__ import annotations

import numpy as np

# summary key -> path into metrics.json (fusion/metrics.py), in table order.
SUMMARY_PATHS: dict[str, tuple[str, ...]] = {
    "n": ("overall", "n"),
    "mode_acc": ("overall", "mode_acc"),
    "color_acc": ("overall", "color_acc"),
    "color_macro_f1": ("overall", "color_macro_f1"),
    "no_lyrics_n": ("subsets", "no_lyrics", "n"),
    "no_lyrics_mode_acc": ("subsets", "no_lyrics", "mode_acc"),
    "no_lyrics_color_acc": ("subsets", "no_lyrics", "color_acc"),
    "no_lyrics_color_macro_f1": ("subsets", "no_lyrics", "color_macro_f1"),
    "ranking_auc": ("fitness", "full", "ranking_auc"),
    "color_ece": ("fitness", "full", "color_ece"),
    "cand_n": ("fitness", "midi_candidates", "n"),
    "cand_color_acc": ("fitness", "midi_candidates", "color_acc"),
    "cand_ranking_auc": ("fitness", "midi_candidates", "ranking_auc"),
    "cand_color_ece": ("fitness", "midi_candidates", "color_ece"),
}
COUNT_KEYS = ("n", "no_lyrics_n", "cand_n")
SUMMARY_KEYS: tuple[str, ...] = tuple(SUMMARY_PATHS)


def run_summary(metrics: dict) -> dict:
    """The SUMMARY_KEYS of one run's metrics (None where the run has no such number), plus its collapse reasons."""
    row = {key: _at(metrics, path) for key, path in SUMMARY_PATHS.items()}
    fitness = metrics.get("fitness") or {}
    row["collapse"] = [f"{view}: {reason}" for view, block in fitness.items() if block
                       for reason in block.get("collapse", [])]
    return row


def _at(tree: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def aggregate(summaries: list[dict]) -> dict:
    """{key: mean, key_sd: sd} over the runs' summaries, counts summed; `collapsed`: runs with a collapse reason."""
    out: dict = {"folds": len(summaries)}
    for key in SUMMARY_KEYS:
        values = [s[key] for s in summaries if s.get(key) is not None]
        if key in COUNT_KEYS:
            out[key] = int(sum(values)) if values else None
            continue
        out[key] = float(np.mean(values)) if values else None
        out[f"{key}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
    out["collapsed"] = sum(1 for s in summaries if s.get("collapse"))
    out["collapse"] = [reason for s in summaries for reason in s.get("collapse", [])]
    return out


def mean_sd_text(mean: float | None, sd: float | None) -> str | None:
    """'0.712 ± 0.034' (or '0.712' without an sd; None without a mean)."""
    if mean is None:
        return None
    return f"{mean:.3f}" if sd is None else f"{mean:.3f} ± {sd:.3f}"
