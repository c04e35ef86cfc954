"""Evaluation metrics for a fusion model's predictions on validation segments.

A metrics *block* is computed for one set of rows and holds:

- ``n``: the number of rows;
- ``temporal_acc`` / ``spatial_acc`` / ``ontological_acc``: argmax accuracy over
  the rows whose target has a single mode (``targets[dim] != -1``). Uniform
  ("none") and two-mode targets have no single right answer and are excluded;
  a block with no such row reports ``None``, never a made-up number;
- ``mode_acc``: the mean of the dimension accuracies that are not ``None``
  (``None`` when all three are);
- ``color_acc``: argmax accuracy of the colour head;
- ``color_macro_f1``: F1 averaged over the colours present in this block's
  truth (a colour the block never contains would otherwise add a meaningless 0).

``compute_metrics`` returns ``{"overall", "per_color", "subsets"}``. Subsets group
rows by which modalities were present (the masks fed to the model; a modality
is present where any input reading it was, e.g. `midi` or `midi.pianoroll`). A
modality no input reads counts as absent on every row.

- ``all``: every row (the same rows as ``overall``);
- ``no_lyrics``: segments without lyric text (``Predictions.has_lyrics``, from
  ``segments.has_lyrics``), whether or not lyrics is an input, so every model
  in a ``compare`` is measured on the same rows. Always reported (it is the
  headline subset: instrumental songs). Without ``has_lyrics`` it falls back
  to the lyrics mask (every row when lyrics is not an input);
- ``no_audio`` / ``no_midi``: that input absent; reported when it is an input;
- ``midi_only``: MIDI present, audio and lyrics absent (concept may be present);
  reported when MIDI is an input;
- ``audio_only``: audio present, MIDI and lyrics absent (concept may be
  present); reported when audio is an input;
- ``text_only``: audio and MIDI absent, lyrics or concept present; reported
  when lyrics or concept is an input.

``compute_metrics(pred, candidates)`` adds ``"fitness"``: the model judged as the
scorer's fitness function (definitions in fusion/quality.py), a block for
``full`` (the validation rows as they are) and for ``midi_candidates`` (the
validation rows that have MIDI, scored with MIDI alone: every other input on the
null path, concept included, as ``ChromaticScorer`` scores a MIDI candidate; None
when MIDI is not an input). Each block holds ``n``, ``color_acc``,
``color_macro_f1``, ``ranking_auc``, ``color_ece``, ``match_spread``,
``colours_predicted`` and ``collapse`` (reasons, empty when healthy); and
``"collapsed"``: true when either block has a collapse reason.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from featurestore.errors import InputNameError
from featurestore.schemas import MODALITIES, input_modality
from featurestore.taxonomy import COLORS, DIMENSIONS
from fusion.errors import ModelError
from fusion.layout import HEAD_LABELS, HEADS
from fusion.quality import collapse_reasons, expected_calibration_error, match_spread, ranking_auc

METRIC_KEYS: tuple[str, ...] = (
    "n",
    "temporal_acc",
    "spatial_acc",
    "ontological_acc",
    "mode_acc",
    "color_acc",
    "color_macro_f1",
)
METRICS_TABLE_COLUMNS: list[str] = ["rows", "n", "temporal", "spatial", "ontological", "mode", "colour", "colour F1"]


@dataclass
class Predictions:
    """A model's outputs on a set of segments, aligned row by row.

    probs: "temporal"/"spatial"/"ontological" -> [N, 3] (taxonomy.MODES order);
    "color" -> [N, 9] (taxonomy.COLORS order). targets: dimension -> [N] single
    mode index or -1 (taxonomy.single_mode_index); "color" -> [N] colour index.
    present: input name -> [N] bool mask as fed to the model.
    """

    segment_ids: np.ndarray
    song_ids: np.ndarray
    colors: np.ndarray
    probs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    has_lyrics: np.ndarray | None = None  # [N] the segment has lyric text, whether or not lyrics is an input

    def __post_init__(self) -> None:
        n = len(self.segment_ids)
        for head in HEADS:
            width = len(HEAD_LABELS[head])
            if head not in self.probs or head not in self.targets:
                raise ModelError(f"predictions lack the {head!r} head; expected heads {', '.join(HEADS)}")
            if np.shape(self.probs[head]) != (n, width):
                raise ModelError(f"probs[{head!r}] has shape {np.shape(self.probs[head])}, expected {(n, width)}")
        for name in self.present:
            try:
                input_modality(name)
            except InputNameError as exc:
                raise ModelError(f"predictions for an unknown input: {exc}") from None
        per_row = [self.song_ids, self.colors, *self.targets.values(), *self.present.values()]
        per_row += [] if self.has_lyrics is None else [self.has_lyrics]
        if any(len(array) != n for array in per_row):
            raise ModelError(f"predictions arrays disagree in length; every array must have {n} rows")

    def __len__(self) -> int:
        return len(self.segment_ids)

    def select(self, mask: np.ndarray) -> "Predictions":
        """The rows where `mask` is true, every array sliced alike."""
        mask = np.asarray(mask, dtype=bool)
        sliced = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                sliced[f.name] = {key: np.asarray(array)[mask] for key, array in value.items()}
            elif value is None:
                sliced[f.name] = None
            else:
                sliced[f.name] = np.asarray(value)[mask]
        return Predictions(**sliced)

    def has(self, modality: str) -> np.ndarray:
        """Rows where some input reading `modality` (`midi`, `midi.pianoroll`, ...) was fed; all false when no
        input reads it."""
        fed = [np.asarray(mask, dtype=bool) for name, mask in self.present.items() if input_modality(name) == modality]
        return np.any(fed, axis=0) if fed else np.zeros(len(self), dtype=bool)


def confusion_matrix(true_idx: np.ndarray, pred_idx: np.ndarray, n: int) -> np.ndarray:
    """[n, n] counts, rows = truth, columns = prediction. Rows with truth -1 are skipped."""
    true_idx = np.asarray(true_idx, dtype=np.int64)
    pred_idx = np.asarray(pred_idx, dtype=np.int64)
    keep = (true_idx >= 0) & (true_idx < n) & (pred_idx >= 0) & (pred_idx < n)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (true_idx[keep], pred_idx[keep]), 1)
    return matrix


def predicted_index(pred: Predictions, head: str) -> np.ndarray:
    return np.asarray(pred.probs[head]).argmax(axis=1) if len(pred) else np.zeros(0, dtype=np.int64)


def single_mode_accuracy(pred: Predictions, dimension: str) -> float | None:
    """Accuracy over rows with a single-mode target; None when there is none."""
    target = np.asarray(pred.targets[dimension])
    scored = target >= 0
    if not scored.any():
        return None
    return float((predicted_index(pred, dimension)[scored] == target[scored]).mean())


def macro_f1(true_idx: np.ndarray, pred_idx: np.ndarray) -> float | None:
    """F1 averaged over the classes that occur in `true_idx`; None when it is empty."""
    true_idx = np.asarray(true_idx)
    pred_idx = np.asarray(pred_idx)
    if true_idx.size == 0:
        return None
    scores = []
    for cls in np.unique(true_idx):
        true_positive = float(np.sum((true_idx == cls) & (pred_idx == cls)))
        predicted = float(np.sum(pred_idx == cls))
        actual = float(np.sum(true_idx == cls))
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / actual
        scores.append(2 * precision * recall / (precision + recall) if true_positive else 0.0)
    return float(np.mean(scores))


def metrics_block(pred: Predictions) -> dict:
    """The metric keys (METRIC_KEYS) for every row of `pred`."""
    block: dict = {"n": len(pred)}
    for dimension in DIMENSIONS:
        block[f"{dimension}_acc"] = single_mode_accuracy(pred, dimension)
    dimension_accs = [block[f"{d}_acc"] for d in DIMENSIONS if block[f"{d}_acc"] is not None]
    block["mode_acc"] = float(np.mean(dimension_accs)) if dimension_accs else None
    color_true = np.asarray(pred.targets["color"])
    color_pred = predicted_index(pred, "color")
    block["color_acc"] = float((color_true == color_pred).mean()) if len(pred) else None
    block["color_macro_f1"] = macro_f1(color_true, color_pred)
    return block


def subset_masks(pred: Predictions) -> dict[str, np.ndarray]:
    """Row masks of the modality-availability subsets (definitions in the module docstring)."""
    audio, midi, lyrics, concept = (pred.has(modality) for modality in MODALITIES)
    inputs = {input_modality(name) for name in pred.present}
    no_lyrics = ~lyrics if pred.has_lyrics is None else ~np.asarray(pred.has_lyrics, dtype=bool)
    masks = {"all": np.ones(len(pred), dtype=bool), "no_lyrics": no_lyrics}
    if "audio" in inputs:
        masks["no_audio"] = ~audio
        masks["audio_only"] = audio & ~midi & ~lyrics
    if "midi" in inputs:
        masks["no_midi"] = ~midi
        masks["midi_only"] = midi & ~audio & ~lyrics
    if inputs & {"lyrics", "concept"}:
        masks["text_only"] = ~audio & ~midi & (lyrics | concept)
    return masks


def compute_metrics(pred: Predictions, candidates: Predictions | None = None) -> dict:
    """Overall, per-colour, per-subset and fitness blocks (see the module docstring).

    `candidates`: the MIDI-candidate view of the validation rows (fusion.train.predict_midi_candidates).
    """
    colors = np.asarray(pred.colors)
    per_color = {c: metrics_block(pred.select(colors == c)) for c in COLORS if np.any(colors == c)}
    subsets = {name: metrics_block(pred.select(mask)) for name, mask in subset_masks(pred).items()}
    fitness = {"full": fitness_block(pred), "midi_candidates": None if candidates is None else fitness_block(candidates)}
    collapsed = any(block is not None and block["collapse"] for block in fitness.values())
    return {"overall": metrics_block(pred), "per_color": per_color, "subsets": subsets, "fitness": fitness,
            "collapsed": collapsed}


def _rounded(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def fitness_block(pred: Predictions) -> dict:
    """Colour accuracy, ranking AUC, calibration and collapse of `pred` as a fitness function."""
    color_true = np.asarray(pred.targets["color"])
    color_pred = predicted_index(pred, "color")
    return {
        "n": len(pred),
        "color_acc": float((color_true == color_pred).mean()) if len(pred) else None,
        "color_macro_f1": macro_f1(color_true, color_pred),
        # Rounded: these read probabilities, whose last bits depend on how rows were batched (and a
        # compacted table returns rows in another order), so `eval` could otherwise differ in the 16th digit.
        "ranking_auc": _rounded(ranking_auc(pred.probs, pred.colors)),
        "color_ece": _rounded(expected_calibration_error(pred.probs["color"], color_true)),
        "match_spread": _rounded(match_spread(pred.probs)),
        "colours_predicted": len(set(color_pred.tolist())),
        "collapse": collapse_reasons(pred.probs, pred.colors),
    }


def metrics_table_rows(metrics: dict) -> list[list]:
    """Rows for a table with METRICS_TABLE_COLUMNS: overall, subsets, then colours."""
    labelled = [("overall", metrics["overall"])]
    labelled += [(f"subset {name}", block) for name, block in metrics.get("subsets", {}).items() if name != "all"]
    labelled += [(f"colour {name}", block) for name, block in metrics.get("per_color", {}).items()]
    return [[label] + [block.get(key) for key in METRIC_KEYS] for label, block in labelled]
