"""`compare`: train one fusion model per combination of stored feature versions.

Every combination is trained with the same TrainConfig, so the same seed and
the same song split (or the same K song folds): the rows differ only in which
inputs the model saw. Each combination is one normal run per fold (artifacts,
registry row); compare returns one summary row per combination, every number
the mean over folds with its standard deviation beside it (fusion/folds.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from featurestore.errors import ChromaticError, InputNameError, TableNotFoundError
from featurestore.input_specs import check_spec, ordered_inputs
from featurestore.join import source_tables
from featurestore.schemas import MODALITIES
from featurestore.store import Store
from fusion.errors import ModelError
from fusion.folds import SUMMARY_KEYS, aggregate, mean_sd_text, run_summary
from fusion.train import TrainConfig, TrainResult, train_folds



@dataclass(frozen=True)
class CompareEvent:
    """Progress of `compare`: one per trained epoch ("epoch"), one per finished combination ("done")."""

    combination: str  # its label
    index: int  # 1-based
    total: int
    stage: Literal["epoch", "done"]
    history: dict | None = None  # the epoch's history row (stage "epoch")
    row: dict | None = None  # the combination's summary row (stage "done")

    @property
    def epoch(self) -> int | None:
        return self.history.get("epoch") if self.history else None


CompareProgressFn = Callable[[CompareEvent], None]

# (row key, printed header), in table order. Failures are listed apart, with their reasons.
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("combination", "combination"),
    ("run_id", "run"),
    ("n", "n"),
    ("mode_acc", "mode"),
    ("color_acc", "colour"),
    ("color_macro_f1", "F1"),
    ("no_lyrics_n", "no-lyr n"),
    ("no_lyrics_mode_acc", "no-lyr mode"),
    ("no_lyrics_color_acc", "no-lyr colour"),
    ("color_ece", "ECE"),
    ("cand_n", "MIDI cand n"),
    ("cand_color_acc", "MIDI cand colour"),
    ("cand_ranking_auc", "MIDI cand AUC"),
    ("cand_color_ece", "MIDI cand ECE"),
    ("collapsed", "collapsed"),
)
_MEAN_SD_KEYS = frozenset(SUMMARY_KEYS)
COMPARE_COLUMNS: list[str] = [key for key, _ in _COLUMNS] + ["status"]
COMPARE_HEADERS: list[str] = [header for _, header in _COLUMNS]


def combinations(grid: dict[str, list[str | None]]) -> list[dict[str, str | None]]:
    """Every choice of one entry per input, inputs in the join's order (by modality); the all-None choice is
    skipped. Inputs are named as for `train` (`midi`, or `midi.pianoroll`: featurestore.input_specs.name_inputs)."""
    validate_grid(grid)
    names = list(ordered_inputs(grid))
    choices = itertools.product(*(list(dict.fromkeys(grid[name])) for name in names))
    combos = [dict(zip(names, choice)) for choice in choices]
    return [combo for combo in combos if any(spec is not None for spec in combo.values())]


def combination_label(combo: dict[str, str | None]) -> str:
    """E.g. 'audio=clap:v1 midi=none lyrics=minilm:v1'."""
    return " ".join(f"{name}={spec or 'none'}" for name, spec in combo.items())


def validate_grid(grid: dict[str, list[str | None]]) -> None:
    """Refuse unknown inputs, empty choice lists and malformed specs before any training."""
    if not grid:
        raise ModelError(f"the compare grid is empty; give versions for some of {', '.join(MODALITIES)}")
    try:
        ordered_inputs(grid)  # refuses names that are not MODALITY or MODALITY.TAG
    except InputNameError as exc:
        raise ModelError(f"unknown input in the compare grid: {exc}") from None
    for name, specs in grid.items():
        if not specs:
            raise ModelError(f"no versions given for {name!r}; list ENCODER:VERSION entries or 'none'")
        for spec in specs:
            if spec is not None:
                check_spec(name, spec)
    if all(spec is None for specs in grid.values() for spec in specs):
        raise ModelError("every input in the compare grid is 'none'; give at least one ENCODER:VERSION")


def check_tables_exist(store: Store, grid: dict[str, list[str | None]]) -> None:
    """Fail before training anything when a listed version has no feature table."""
    wanted = {t for n, specs in grid.items() for s in specs if s is not None for t in source_tables(store, n, s)}
    existing = set(store.table_names())
    missing = sorted(wanted - existing)
    if missing:
        raise TableNotFoundError(
            missing[0], sorted(t for t in existing if "." in t), "encode it first (`chromatic encode`)"
        )


def compare(
    store: Store,
    grid: dict[str, list[str | None]],
    config: TrainConfig,
    progress: CompareProgressFn | None = None,
) -> list[dict]:
    """Train every combination of `grid` (None = input left out); one summary row each.

    A combination whose training fails with a ChromaticError (e.g. no row has
    any of its inputs) gets a row whose "status" holds the reason; the others
    still run.
    """
    combos = combinations(grid)
    check_tables_exist(store, grid)
    rows = []
    for index, combo in enumerate(combos, start=1):
        event = CompareEvent(combination_label(combo), index, len(combos), "epoch")
        row = _train_one(store, combo, config, event, progress)
        rows.append(row)
        if progress:
            progress(replace(event, stage="done", row=row))
    return rows


def _train_one(store: Store, combo: dict, config: TrainConfig, event: CompareEvent, progress) -> dict:
    inputs = {name: spec for name, spec in combo.items() if spec is not None}

    def on_epoch(history_row: dict) -> None:
        if progress:
            progress(replace(event, history=history_row))

    try:
        results = train_folds(store, inputs, config, progress=on_epoch)
    except ChromaticError as exc:
        return {**_empty_row(event.combination, inputs), "status": f"error: {exc}"}
    return summary_row(event.combination, inputs, results)


def summary_row(label: str, inputs: dict[str, str], results: list[TrainResult]) -> dict:
    """The fold mean (key) and sd (key_sd) of every summary number of the runs (None where there is none).

    run_id/run_dir are the first fold's; run_ids/run_dirs list every fold's run.
    """
    row = _empty_row(label, inputs)
    row.update(aggregate([run_summary(result.metrics) for result in results]))
    row.update(run_id=results[0].run_id, run_dir=str(results[0].run_dir), status="ok",
               run_ids=[r.run_id for r in results], run_dirs=[str(r.run_dir) for r in results])
    return row


def _empty_row(label: str, inputs: dict[str, str]) -> dict:
    empty = {column: None for column in COMPARE_COLUMNS[1:]}
    return {"combination": label, "inputs": dict(inputs), "run_dir": None, **empty}


def compare_table_rows(rows: list[dict]) -> list[list]:
    """`rows` as lists under COMPARE_HEADERS (mean ± sd over folds); one input per line keeps the table narrow."""
    table = []
    for row in rows:
        cells = []
        for key, _ in _COLUMNS:
            value = row.get(key)
            if key in _MEAN_SD_KEYS and isinstance(value, float):
                value = mean_sd_text(value, row.get(f"{key}_sd"))
            elif key == "collapsed" and value is not None:
                value = f"{value}/{row['folds']}"
            elif key == "run_id" and len(row.get("run_ids") or []) > 1:
                value = f"{value}\n(+{len(row['run_ids']) - 1} folds)"
            cells.append(value)
        cells[0] = cells[0].replace(" ", "\n")
        table.append(cells)
    return table
