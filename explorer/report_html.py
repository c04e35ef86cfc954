"""`chromatic report RUN --html FILE`: the explorer's run view as one self-contained HTML file.

plotly.js is inlined and nothing is linked, so the file opens anywhere with no
network: mail it, attach it to an issue, open it on a plane.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from explorer.figures import PLOT_CONFIG, plotly_js, run_figures
from featurestore.store import Store
from fusion.metrics import METRIC_KEYS
from fusion.run_view import load_run_view

WRONG_ROWS_SHOWN = 50


def write_run_html(store: Store, run_id: str, path: Path) -> Path:
    view = load_run_view(store, run_id).to_dict()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_html(view), encoding="utf-8")
    return path


def run_html(view: dict) -> str:
    figures = run_figures(view)
    divs = "\n".join(f'<div id="fig-{name}" class="fig"></div>' for name in figures)
    calls = "\n".join(f"Plotly.newPlot('fig-{name}', {_script_json(fig['data'])}, {_script_json(fig['layout'])}, "
                      f"{_script_json(PLOT_CONFIG)});" for name, fig in figures.items())
    inputs = " ".join(f"{name}={spec}" for name, spec in view["inputs"].items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(view['run_id'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1em 2em;color:#222}}
table{{border-collapse:collapse;font-size:.85em}}
td,th{{border-bottom:1px solid #eee;padding:.15em .5em;text-align:left}}
.figs{{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:.5em}}</style>
<script type="text/javascript">{plotly_js()}</script></head>
<body><h1>{_e(view['run_id'])}</h1>
<p>inputs: {_e(inputs)} · best epoch {_e(view.get('best_epoch'))} · created {_e(view.get('created_at'))}</p>
<h2>validation metrics</h2>{_metrics_table(view['metrics'])}
<h2>curves and confusion matrices</h2><div class="figs">{divs}</div>
<h2>validation rows with the wrong colour ({min(len(view['wrong']), WRONG_ROWS_SHOWN)} of {view['wrong_total']})</h2>
{_wrong_table(view['wrong'][:WRONG_ROWS_SHOWN])}
<h2>training settings</h2><pre>{_e(json.dumps(view.get('training', {}), indent=2, sort_keys=True))}</pre>
<script type="text/javascript">{calls}</script>
</body></html>
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _script_json(value) -> str:
    """JSON safe inside a <script> element (no `</script>` can end it early)."""
    return json.dumps(value).replace("</", "<\\/")


def _cell(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else _e("n/a" if value is None else value)


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _metrics_table(metrics: dict) -> str:
    blocks = [("overall", metrics.get("overall", {}))]
    blocks += [(f"subset {k}", v) for k, v in metrics.get("subsets", {}).items()]
    blocks += [(f"colour {k}", v) for k, v in metrics.get("per_color", {}).items()]
    return _table(["rows", *METRIC_KEYS], [[label, *(block.get(k) for k in METRIC_KEYS)] for label, block in blocks])


def _wrong_table(rows: list[dict]) -> str:
    keys = ["segment_id", "song_id", "color", "predicted", "confidence", "true_prob"]
    return _table(keys, [[row.get(k) for k in keys] for row in rows])
