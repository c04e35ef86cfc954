"""How `chromatic` shows results: rich tables or JSON, lines and progress bars for cli.py's commands.

Kept apart from cli.py so that the typer app stays a list of thin commands; this
module never imports typer. Each `print_*(..., as_json=...)` writes either JSON or
tables to stdout; progress and warnings go to stderr (`err_console`) so that
`--json` output stays machine-readable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# Piped output (logs, CI) gets wide tables instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)

SYNTH_HEADERS = ["colour", "songs", "segments", "% audio", "% MIDI", "% lyrics"]
COVERAGE_HEADERS = ["colour", "segments", "% audio", "% MIDI", "% lyrics"]
ENCODE_HEADERS = ["table", "encoded", "absent", "failed", "had rows", "rows", "state", "seconds", "seg/s"]
NEIGHBOR_HEADERS = ["rank", "segment_id", "song_id", "colour", "start–end (s)", "distance"]


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def rich_table(title: str, columns: list[str], rows: list[list]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_cell(v) for v in row])
    return table


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _new_bar(label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=True)


@contextmanager
def counting_progress(label: str, total: int | None = None) -> Iterator[Callable[[int, int | None], None]]:
    """A transient bar on stderr, driven by the library's `progress(done, total)` callback it yields."""
    bar = _new_bar(label)
    task = bar.add_task(label, total=total)
    with bar:
        yield lambda done, new_total: bar.update(task, completed=done, total=new_total)


# -- data: synth, ingest, info -------------------------------------------------------------

def _synth_summary_rows(summary) -> list[list]:
    rows = []
    for color, counts in summary.per_color.items():
        rows.append([color, counts.songs, counts.segments,
                     *(f"{100 * counts.coverage(m):.0f}" for m in ("audio", "midi", "lyrics"))])
    total = summary.total
    rows.append(["all", total.songs, total.segments,
                 *(f"{100 * total.coverage(m):.0f}" for m in ("audio", "midi", "lyrics"))])
    return rows


def print_synth_summary(summary, as_json: bool = False) -> None:
    if as_json:
        print_json(summary.to_dict())
        return
    console.print(rich_table("synthetic corpus", SYNTH_HEADERS, _synth_summary_rows(summary)))
    console.print(f"wrote {summary.out}: {summary.bytes / 1e6:.1f} MB, {summary.audio_seconds:.0f} s of audio, "
                  f"in {summary.seconds:.1f} s")
    for song, reason in summary.failures:
        err_console.print(f"[yellow]skipped song {song}:[/] {reason}")


def _ingest_summary_rows(summary) -> list[list]:
    rows = [["rows read", summary.rows_read], ["ingested (new)", summary.ingested],
            ["updated", summary.updated], ["rejected", summary.rejected_total]]
    rows += [[f"  rejected: {reason}", n] for reason, n in sorted(summary.rejected.items())]
    rows += [[f"  dropped {reason}", n] for reason, n in sorted(summary.modality_dropped.items())]
    rows += [["rejects file", summary.rejects_path], ["seconds", f"{summary.seconds:.1f}"]]
    return rows


def print_ingest_summary(summary, title: str = "ingest", as_json: bool = False) -> None:
    if as_json:
        print_json(summary.to_dict())
        return
    console.print(rich_table(title, ["", "value"], _ingest_summary_rows(summary)))


def print_info(info: dict, as_json: bool = False) -> None:
    if as_json:
        print_json(info)
        return
    console.print(f"store: {info['uri']}")
    console.print(rich_table("tables", ["table", "kind", "rows"],
                             [[t["table"], t["kind"], t["rows"]] for t in info["tables"]]))
    rows = [[c["color"], c["segments"], f"{c['audio_pct']:.1f}", f"{c['midi_pct']:.1f}", f"{c['lyrics_pct']:.1f}"]
            for c in info["coverage"]]
    console.print(rich_table("coverage", COVERAGE_HEADERS, rows))


# -- encoders: encode, versions ------------------------------------------------------------

def print_encode_result(summary, as_json: bool = False) -> None:
    if as_json:
        print_json(summary.to_dict())
        return
    print_encode_summary(summary, title=f"encode {summary.encoder}:{summary.version}")


def print_encode_summary(summary, title: str) -> None:
    rows = [[t.table, t.encoded, t.absent, t.failed_total, t.skipped_existing, t.rows, t.state,
             f"{t.seconds:.1f}", f"{t.segments_per_s:.1f}"] for t in summary.tables]
    console.print(rich_table(title, ENCODE_HEADERS, rows))
    for t in summary.tables:
        for reason, count in sorted(t.failed.items(), key=lambda kv: -kv[1]):
            console.print(f"  {t.table}: {count} x error: {reason}")


def print_versions(versions: list[dict], as_json: bool = False) -> None:
    if as_json:
        print_json(versions)
        return
    if not versions:
        console.print("no feature tables yet; run `chromatic encode --encoder NAME --version v1`")
        return
    rows = [[v["table"], f"{v['kind'] or '?'} {'x'.join(map(str, v['shape']))}",
             " ".join(f"{k}={val}" for k, val in sorted(v["params"].items())) if v["params"] is not None else None,
             v["model_id"],
             v["rows"], f"{v['coverage_pct']:.1f}", v["state"], (v["created_at"] or "")[:19]] for v in versions]
    headers = ["table", "kind/shape", "params", "model", "rows", "% present", "state", "created (UTC)"]
    console.print(rich_table("feature tables", headers, rows))
    colors = list(dict.fromkeys(c for v in versions for c in v["coverage_pct_by_color"]))
    by_color = [[v["table"]] + [f"{v['coverage_pct_by_color'].get(c, 0.0):.0f}" for c in colors] for v in versions]
    console.print(rich_table("% present by colour", ["table"] + colors, by_color))


# -- fusion: train, eval, compare ----------------------------------------------------------

def _epoch_line(row: dict, epochs: int) -> str:
    def pct(value):
        return "  n/a" if value is None else f"{100 * value:5.1f}"

    return (f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  "
            f"mode acc {pct(row['val_mode_acc'])}%  colour acc {pct(row['val_color_acc'])}%  {row['seconds']:.1f}s")


def print_epoch(row: dict, epochs: int) -> None:
    err_console.print(_epoch_line(row, epochs))


def _print_metrics(title: str, metrics: dict) -> None:
    from fusion.metrics import METRICS_TABLE_COLUMNS, metrics_table_rows

    console.print(rich_table(title, METRICS_TABLE_COLUMNS, metrics_table_rows(metrics)))


def print_train_result(result, as_json: bool = False) -> None:
    if as_json:
        print_json({"run_id": result.run_id, "run_dir": str(result.run_dir), "metrics": result.metrics,
                    "history": result.history, "summary": result.summary})
        return
    summary = result.summary
    _print_metrics(f"{result.run_id}: validation ({summary['val']} segments, best epoch {summary['best_epoch']})",
                   result.metrics)
    _print_fitness(result.metrics)
    for table in summary["incomplete_tables"]:
        console.print(f"[yellow]warning:[/] {table} is still being encoded; its missing segments were masked")
    for reason, count in sorted(summary["skipped_by_reason"].items()):
        console.print(f"[yellow]{count} segment(s) skipped or masked: {reason}[/] (listed in manifest.json)")
    console.print(f"run: {result.run_dir}\nreport: {result.run_dir / 'report.png'}")


_FITNESS_COLUMNS = ["view", "n", "colour", "ranking AUC", "ECE", "match spread", "colours predicted"]


def _print_fitness(metrics: dict) -> None:
    """The model as the scorer's fitness function, and a loud warning when it collapsed."""
    fitness = metrics.get("fitness") or {}
    keys = ("n", "color_acc", "ranking_auc", "color_ece", "match_spread", "colours_predicted")
    rows = [[view] + [block.get(k) for k in keys] for view, block in fitness.items() if block]
    if rows:
        console.print(rich_table("as a fitness function (MIDI candidates: MIDI alone, as the scorer feeds it)",
                                 _FITNESS_COLUMNS, rows))
    for view, block in fitness.items():
        for reason in (block or {}).get("collapse", []):
            err_console.print(f"[red]COLLAPSED[/] ({view}): {reason}; this model cannot rank candidates")


def print_fold_results(results, as_json: bool = False) -> None:
    """`train --folds K`: each fold's run, then the mean ± sd over folds."""
    from fusion.folds import aggregate, run_summary

    summary = aggregate([run_summary(r.metrics) for r in results])
    if as_json:
        print_json({"runs": [{"run_id": r.run_id, "run_dir": str(r.run_dir), "metrics": r.metrics} for r in results],
                    "mean_sd": summary})
        return
    for result in results:
        console.print(f"fold {result.summary.get('fold')}: {result.run_id} ({result.summary['val']} validation rows)")
        _print_fitness(result.metrics)
    print_fold_summary(f"{len(results)} folds: mean ± sd", summary)


def print_fold_summary(title: str, summary: dict) -> None:
    from fusion.folds import SUMMARY_KEYS, mean_sd_text

    rows = [[key, summary[key] if key.endswith("n") else mean_sd_text(summary[key], summary.get(f"{key}_sd"))]
            for key in SUMMARY_KEYS]
    console.print(rich_table(title, ["metric", "value"], rows))
    if summary.get("collapsed"):
        err_console.print(f"[red]COLLAPSED[/] in {summary['collapsed']} of {summary['folds']} fold(s): "
                          + "; ".join(summary["collapse"]))


def warn_moved_tables(moved_tables: dict) -> None:
    for table, (recorded, current) in sorted(moved_tables.items()):
        err_console.print(f"[yellow]warning:[/] {table} is now at Lance version {current}; the run was trained on "
                          f"version {recorded}, which is what was evaluated. Re-train to use the newer data.")


def print_eval_result(result, as_json: bool = False) -> None:
    if as_json:
        print_json({"run_id": result.run_id, "metrics": result.metrics, "stored_metrics": result.stored_metrics,
                    "moved_tables": result.moved_tables})
        return
    _print_metrics(f"{result.run_id}: validation (re-computed)", result.metrics)
    _print_fitness(result.metrics)
    same = "match" if result.metrics == result.stored_metrics else "DIFFER from"
    console.print(f"re-computed metrics {same} the stored metrics.json")


def print_eval_folds(results, as_json: bool = False) -> None:
    """`eval RUN RUN ...` (e.g. the K fold runs of a compare): each run, then the mean ± sd over them."""
    from fusion.folds import aggregate, run_summary

    summary = aggregate([run_summary(r.metrics) for r in results])
    if as_json:
        print_json({"runs": [{"run_id": r.run_id, "metrics": r.metrics, "moved_tables": r.moved_tables}
                             for r in results], "mean_sd": summary})
        return
    for result in results:
        print_eval_result(result)
    print_fold_summary(f"{len(results)} runs: mean ± sd (re-computed)", summary)


class CompareProgress:
    """A rich bar over all epochs of all combinations (on stderr, so --json stays clean)."""

    def __init__(self, epochs: int):
        self.epochs = epochs
        self.bar = _new_bar("{task.description}")
        self.task = None

    def __call__(self, event: dict) -> None:
        if self.task is None:
            self.task = self.bar.add_task("compare", total=event["total"] * self.epochs)
        label = f"[{event['index']}/{event['total']}] {event['combination']}"
        if event["stage"] == "epoch":
            self.bar.update(self.task, advance=1, description=f"{label} epoch {event.get('epoch')}")
        else:  # early stopping ends a run before its last epoch
            self.bar.update(self.task, completed=event["index"] * self.epochs, description=label)


def print_compare(rows: list[dict], seed: int, as_json: bool = False) -> None:
    if as_json:
        print_json(rows)
        return
    from fusion.compare import COMPARE_HEADERS, compare_table_rows

    trained = [row for row in rows if row["status"] == "ok"]
    failed = [row for row in rows if row["status"] != "ok"]
    folds = max([row.get("folds") or 1 for row in trained] or [1])
    split = f"{folds} song folds, mean ± sd" if folds > 1 else "same song split for every row"
    title = f"compare: validation accuracies (seed {seed}, {split})"
    console.print(rich_table(title, COMPARE_HEADERS, compare_table_rows(trained)))
    for row in failed:
        err_console.print(f"[red]failed[/] {row['combination']}: {row['status']}")
    for row in trained:
        if row.get("collapsed"):
            err_console.print(f"[red]COLLAPSED[/] {row['combination']} in {row['collapsed']} of {row['folds']} "
                              f"fold(s): {'; '.join(row['collapse'])}")
    console.print(f"{len(trained)} of {len(rows)} combinations trained, {len(failed)} failed.")


# -- scoring: export, score, embed ---------------------------------------------------------

def print_export(path: Path, info: dict, as_json: bool = False) -> None:
    if as_json:
        print_json({"path": str(path), **info})
        return
    console.print(f"wrote {path} ({info['bytes'] / 1e6:.2f} MB, opset {info['opset']}, self-contained)")
    console.print(f"parity vs torch: max abs diff {info['parity_max_abs_diff']:.2e} over {info['parity_rows']} rows "
                  f"covering all {info['mask_patterns']} mask patterns (tolerance {info['parity_tolerance']:g})")


def _score_rows(results) -> list[list]:
    from featurestore.taxonomy import DIMENSIONS

    return [[r.rank, r.id, r.match, r.predicted_color, r.p_target,
             " / ".join(r.top_mode(d) for d in DIMENSIONS) if r.error is None else None,
             r.error] for r in results]


def print_scores(results, target: str, as_json: bool = False) -> None:
    if as_json:
        print_json([r.to_dict() for r in results])
        return
    headers = ["rank", "candidate", "match", "predicted", f"p({target})",
               "top modes (temporal / spatial / ontological)", "error"]
    console.print(rich_table(f"chromatic match to {target}", headers, _score_rows(results)))


def print_embed(name: str, record, as_json: bool = False) -> None:
    if as_json:
        print_json(record.to_row() | {"params": record.params_dict})
        return
    masked = {k: v for k, v in record.params_dict["masked_non_finite"].items() if v}
    console.print(f"wrote {name}: {record.rows} segments, {record.present} embedded, {record.failed} failed, "
                  f"{record.shape[0]}-d unit vectors (cosine)")
    for input_name, count in sorted(masked.items()):
        console.print(f"[yellow]{count} segment(s) had non-finite {input_name} values:[/] embedded with it masked")


# -- search: neighbors, index, inspect -----------------------------------------------------

def _span(start, end) -> str:
    if start is None or end is None:
        return "-"
    return f"{start:.1f}–{end:.1f}"


def _neighbor_rows(found) -> list[list]:
    return [[n.rank, n.segment_id, n.song_id, n.color, _span(n.start_s, n.end_s), f"{n.distance:.4f}"]
            for n in found]


def print_neighbors(table: str, found, as_json: bool = False) -> None:
    if as_json:
        print_json({"table": table, "neighbors": [n.to_dict() for n in found]})
        return
    if not found:
        console.print(f"no neighbours in {table}: no segment with a vector passes the filters")
        return
    console.print(rich_table(f"neighbours in {table}", NEIGHBOR_HEADERS, _neighbor_rows(found)))


def print_index(table: str, summary: dict, as_json: bool = False) -> None:
    if as_json:
        print_json(summary)
        return
    rows = [[key, ", ".join(value) if isinstance(value, list) else value] for key, value in summary.items()]
    console.print(rich_table(f"index {table}", ["", "value"], rows))


def print_inspect(report: dict, as_json: bool = False) -> None:
    if as_json:
        print_json(report)
        return
    knn = report["knn"]
    per_color = knn.get("per_color", {})
    rows = [[color, c["segments"], c["present"], f"{c['present_pct']:.1f}",
             " ".join(f"{why}={n}" for why, n in c["missing"].items()) or "-",
             f"{100 * per_color[color]:.1f}" if color in per_color else "-"]
            for color, c in report["coverage"].items()]
    headers = ["colour", "segments", "with vector", "% present", "missing (why)", f"% {knn['k']}-NN correct"]
    console.print(rich_table(f"inspect {report['table']} ({report['dim']}-d)", headers, rows))
    console.print(f"space (the one `neighbors` searches this table in): {report['space']}")
    if knn["accuracy"] is None:
        console.print(f"k-NN colour accuracy: n/a ({knn.get('note', 'no rows')})")
    else:
        sample = " (seeded sample)" if knn["sampled"] else ""
        console.print(
            f"k-NN colour accuracy (k={knn['k']}, neighbours from other songs only, {knn['evaluated']} rows{sample}): "
            f"[bold]{100 * knn['accuracy']:.1f}%[/]; chance: majority colour {100 * knn['chance_majority']:.1f}%, "
            f"random by prior {100 * knn['chance_prior']:.1f}%"
        )
    if report["unlabelled_vectors"]:
        console.print(f"{report['unlabelled_vectors']} vectors belong to segments no longer in `segments` (not scored)")
    if "map" in report:
        console.print(f"2-D map: {report['map']['png']}")


# -- demo ----------------------------------------------------------------------------------

def print_demo(store_uri: str, steps: Iterable[tuple[str, object]]) -> None:
    """Print each step of fusion.demo.run_demo as it finishes (the steps run while this iterates)."""
    console.print(f"[bold]chromatic demo[/] on store {store_uri}")
    for step, payload in steps:
        _print_demo_step(step, payload)
    console.print("[bold green]demo finished.[/] Try: chromatic info, chromatic versions, "
                  "chromatic neighbors --space spectral:v1 --segment ID --color Green")


def _print_demo_step(step: str, payload) -> None:
    from fusion.compare import COMPARE_HEADERS, compare_table_rows

    if step == "synth":
        console.print(rich_table("1. synthetic corpus", SYNTH_HEADERS, _synth_summary_rows(payload)))
    elif step == "ingest":
        print_ingest_summary(payload, title="2. ingest")
    elif step == "info":
        rows = [[c["color"], c["segments"], f"{c['audio_pct']:.0f}", f"{c['midi_pct']:.0f}", f"{c['lyrics_pct']:.0f}"]
                for c in payload["coverage"]]
        console.print(rich_table("3. coverage in the store", COVERAGE_HEADERS, rows))
    elif step == "encode":
        print_encode_summary(payload, title=f"4. encode {payload.encoder}:{payload.version}")
    elif step == "compare":
        console.print(rich_table("5. train: all inputs vs fewer, same song split (validation accuracies)",
                                 COMPARE_HEADERS, compare_table_rows(payload)))
    elif step == "run":
        console.print(f"model run {payload['run_id']}: report image {Path(payload['run_dir']) / 'report.png'}")
    elif step == "scorer":
        console.print(f"scorer model (chromatic train --preset scorer): {payload.run_id}")
        _print_fitness(payload.metrics)
    elif step == "score":
        _print_demo_scores(payload)
    elif step == "neighbors":
        console.print(rich_table(f"7. neighbours of {payload['query']} within {payload['color']} in {payload['table']}",
                                 NEIGHBOR_HEADERS, _neighbor_rows(payload["neighbors"])))


def _print_demo_scores(payload: dict) -> None:
    target = payload["target"]
    rows = [[r.rank, r.id, payload["truth"].get(r.id), r.match, r.predicted_color, r.p_target, r.error]
            for r in payload["results"]]
    headers = ["rank", "candidate (held-out song)", "true colour", "match", "predicted", f"p({target})", "error"]
    console.print(rich_table(f"6. score: MIDI candidates ranked against {target} by the scorer preset "
                             f"({payload['run_id']}, MIDI alone)", headers, rows))
