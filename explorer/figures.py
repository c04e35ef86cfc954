"""Plotly figures of a run (curves, confusion matrices) as JSON-ready dicts, and plotly.js itself.

The same figures feed the explorer page and the self-contained HTML report;
plotly.js comes from the installed plotly package, never from a CDN.
"""

from __future__ import annotations

import functools
import json

import numpy as np

# Plotly's logo links to plotly.com; a page that must work offline links nowhere.
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
CURVES = (("train_loss", "train loss", "y"), ("val_loss", "validation loss", "y"),
          ("val_mode_acc", "validation mode accuracy", "y2"), ("val_color_acc", "validation colour accuracy", "y2"))


@functools.lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped inside the plotly Python package."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _as_dict(figure) -> dict:
    return json.loads(figure.to_json())  # plotly's encoder turns numpy into plain JSON


def curves_figure(history: list[dict]) -> dict:
    """Loss (left axis) and validation accuracies (right axis) per epoch."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for key, name, axis in CURVES:
        points = [(row["epoch"], row[key]) for row in history if row.get(key) is not None]
        figure.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], name=name,
                                    mode="lines+markers", yaxis=axis))
    figure.update_xaxes(dtick=1)  # epochs are whole numbers
    figure.update_layout(title="training curves", xaxis_title="epoch", yaxis_title="loss",
                         yaxis2=dict(title="accuracy", overlaying="y", side="right", range=[0, 1.05]),
                         height=380, margin=dict(l=60, r=60, t=50, b=50), legend=dict(orientation="h", y=-0.25))
    return _as_dict(figure)


def confusion_figure(labels: list[str], matrix: list[list[int]], title: str) -> dict:
    """Row-normalised shading (recall per true class) with the raw counts written in."""
    import plotly.graph_objects as go

    counts = np.asarray(matrix, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    text = [[str(c) if c else "" for c in row] for row in counts.tolist()]
    figure = go.Figure(go.Heatmap(z=shares, x=labels, y=labels, text=text, texttemplate="%{text}",
                                  colorscale="Blues", zmin=0, zmax=1, showscale=False,
                                  hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>"))
    figure.update_layout(title=f"{title}: {int(counts.sum())} rows", xaxis_title="predicted", yaxis_title="true",
                         yaxis_autorange="reversed", height=360, margin=dict(l=80, r=20, t=50, b=80))
    return _as_dict(figure)


def run_figures(view: dict) -> dict[str, dict]:
    """{"curves": ..., "<head>_confusion": ...} for a `RunView.to_dict()`."""
    figures = {"curves": curves_figure(view["history"])}
    for head, block in view["confusion"].items():
        title = "colour" if head == "color" else f"{head} (single-mode rows)"
        figures[f"{head}_confusion"] = confusion_figure(block["labels"], block["matrix"], title)
    return figures
