"""The training report: one PNG with curves, confusion matrices and accuracy bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from featurestore.taxonomy import COLORS, DIMENSIONS, MODES
from fusion.metrics import Predictions, confusion_matrix, predicted_index

# Bar colours for the colour names; White gets a light grey so it shows on white.
_SWATCH = {"White": "#e6e6e6", "Indigo": "#4b0082", "Violet": "#8f00ff"}


def write_report(path: Path, history: list[dict], pred: Predictions, metrics: dict) -> Path:
    """Write the report PNG to `path` and return it.

    history: one dict per epoch with "epoch", "train_loss", "val_loss",
    "val_mode_acc", "val_color_acc". pred/metrics: the validation predictions
    and their `compute_metrics` result.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on training machines
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 4, figsize=(24, 11))
    _plot_losses(axes[0, 0], history)
    _plot_val_accuracy(axes[0, 1], history)
    _plot_accuracy_bars(axes[0, 2], metrics.get("per_color", {}), "accuracy per colour (validation)", True)
    _plot_accuracy_bars(axes[0, 3], metrics.get("subsets", {}), "accuracy by inputs present (validation)", False)
    for ax, dimension in zip(axes[1, :3], DIMENSIONS):
        matrix = confusion_matrix(pred.targets[dimension], predicted_index(pred, dimension), len(MODES[dimension]))
        _plot_confusion(ax, matrix, MODES[dimension], f"{dimension} (single-mode rows)")
    color_matrix = confusion_matrix(pred.targets["color"], predicted_index(pred, "color"), len(COLORS))
    _plot_confusion(axes[1, 3], color_matrix, COLORS, "colour")
    overall = metrics.get("overall", {})
    fig.suptitle(
        f"validation: {overall.get('n', 0)} segments, mode acc {_fmt(overall.get('mode_acc'))}, "
        f"colour acc {_fmt(overall.get('color_acc'))}, colour macro-F1 {_fmt(overall.get('color_macro_f1'))}",
        fontsize=15,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _series(history: list[dict], key: str) -> tuple[list, list]:
    points = [(row["epoch"], row[key]) for row in history if row.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def _plot_losses(ax, history: list[dict]) -> None:
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        epochs, values = _series(history, key)
        ax.plot(epochs, values, marker="o", label=label)
    _finish_curve(ax, history, "loss per epoch", "loss")


def _plot_val_accuracy(ax, history: list[dict]) -> None:
    for key, label in (("val_mode_acc", "mode accuracy"), ("val_color_acc", "colour accuracy")):
        epochs, values = _series(history, key)
        ax.plot(epochs, values, marker="o", label=label)
    ax.set_ylim(0, 1.05)
    _finish_curve(ax, history, "validation accuracy per epoch", "accuracy")


def _finish_curve(ax, history: list[dict], title: str, ylabel: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if history:
        ax.legend()
        ax.grid(alpha=0.3)
    else:
        ax.text(0.5, 0.5, "no training history", ha="center", va="center", transform=ax.transAxes)


def _plot_accuracy_bars(ax, blocks: dict[str, dict], title: str, swatches: bool) -> None:
    """Grouped bars (mode, colour accuracy) per block; 'n/a' where a value is None."""
    names = list(blocks)
    x = np.arange(len(names))
    width = 0.38
    for offset, key, label, hatch in ((-width / 2, "mode_acc", "mode", ""), (width / 2, "color_acc", "colour", "//")):
        values = [blocks[name].get(key) for name in names]
        faces = [_SWATCH.get(name, name.lower()) if swatches else None for name in names]
        bars = ax.bar(x + offset, [v or 0.0 for v in values], width, label=label, hatch=hatch, edgecolor="black")
        for bar, value, face in zip(bars, values, faces):
            if face is not None:
                bar.set_facecolor(face)
            ax.annotate(_fmt(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8, rotation=90, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, [f"{name}\n(n={blocks[name].get('n', 0)})" for name in names], fontsize=9)
    ax.set_ylim(0, 1.4)  # head-room for the value labels and the legend
    ax.set_ylabel("accuracy")
    ax.set_title(title + ("  (plain = mode, hatched = colour)" if swatches else ""))
    if not swatches:
        ax.legend(loc="upper left", ncol=2)


def _plot_confusion(ax, matrix: np.ndarray, labels: tuple[str, ...], title: str) -> None:
    """Row-normalised shading (recall per true class) with raw counts written in."""
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha="right")
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: {int(matrix.sum())} rows")
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            ax.text(col, row, str(count), ha="center", va="center", color="white" if shares[row, col] > 0.5 else "black")
