"""Views of the fusion commands: epochs, train, folds, eval, compare."""

from __future__ import annotations


from render.base import console, err_console, new_bar, print_json, rich_table


def _epoch_line(row: dict, epochs: int) -> str:
    def pct(value):
        return "  n/a" if value is None else f"{100 * value:5.1f}"

    # Ensemble members are tagged; a refitted member trains a fixed number of epochs with no validation.
    member = "" if row.get("member") is None else f"member {row['member']}{' refit' if row.get('refit') else ''}  "
    val = "" if row.get("val_loss") is None else (
        f"val loss {row['val_loss']:.4f}  mode acc {pct(row['val_mode_acc'])}%  colour acc {pct(row['val_color_acc'])}%  ")
    return f"{member}epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f}  {val}{row['seconds']:.1f}s"


def print_epoch(row: dict, epochs: int) -> None:
    err_console.print(_epoch_line(row, epochs))


def _print_metrics(title: str, metrics: dict) -> None:
    from fusion.metrics import METRICS_TABLE_COLUMNS, metrics_table_rows

    console.print(rich_table(title, METRICS_TABLE_COLUMNS, metrics_table_rows(metrics)))


def print_train_result(result, as_json: bool = False) -> None:
    from fusion.layout import MANIFEST, REPORT

    if as_json:
        print_json({"run_id": result.run_id, "run_dir": str(result.run_dir), "metrics": result.metrics,
                    "history": result.history, "summary": result.summary})
        return
    summary = result.summary
    _print_metrics(f"{result.run_id}: validation ({summary['val']} segments, best epoch {summary['best_epoch']})",
                   result.metrics)
    print_fitness(result.metrics)
    for name, fills in result.metrics.get("input_fills", {}).items():
        if len(fills) > 1:
            parts = ", ".join(f"{f['filled']} from {table}" for table, f in fills.items())
            console.print(f"{name}: {parts} (per colour in metrics.json)")
    for table in summary["incomplete_tables"]:
        console.print(f"[yellow]warning:[/] {table} is still being encoded; its missing segments were masked")
    for table, count in sorted(summary.get("stale_rows", {}).items()):
        console.print(f"[yellow]warning:[/] {count} row(s) of {table} were computed from inputs that changed since "
                      "(re-ingested): masked. Re-run its `chromatic encode` to bring them up to date")
    for table, count in sorted(summary.get("unverified_rows", {}).items()):
        console.print(f"[yellow]note:[/] {count} row(s) of {table} were written before lineage was recorded and "
                      "cannot be checked; `chromatic doctor` says how to re-encode them")
    for reason, count in sorted(summary["skipped_by_reason"].items()):
        console.print(f"[yellow]{count} segment(s) skipped or masked: {reason}[/] (listed in {MANIFEST})")
    console.print(f"run: {result.run_dir}\nreport: {result.run_dir / REPORT}")


_FITNESS_COLUMNS = ["view", "n", "colour", "ranking AUC", "ECE", "match spread", "colours predicted"]


def print_fitness(metrics: dict) -> None:
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
        print_fitness(result.metrics)
    print_fold_summary(f"{len(results)} folds: mean ± sd", summary)


def print_fold_summary(title: str, summary: dict) -> None:
    from fusion.folds import COUNT_KEYS, SUMMARY_KEYS, mean_sd_text

    rows = [[key, summary[key] if key in COUNT_KEYS else mean_sd_text(summary[key], summary.get(f"{key}_sd"))]
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
    print_fitness(result.metrics)
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
        self.bar = new_bar("{task.description}")
        self.task = None

    def __call__(self, event) -> None:
        """`event`: a fusion.compare.CompareEvent."""
        if self.task is None:
            self.task = self.bar.add_task("compare", total=event.total * self.epochs)
        label = f"[{event.index}/{event.total}] {event.combination}"
        if event.stage == "epoch":
            self.bar.update(self.task, advance=1, description=f"{label} epoch {event.epoch}")
        else:  # early stopping ends a run before its last epoch
            self.bar.update(self.task, completed=event.index * self.epochs, description=label)


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
