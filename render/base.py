"""The consoles, tables, cells and progress bars every view is drawn with."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
from rich.progress import TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

# Piped output (logs, CI) gets wide tables instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)

SYNTH_HEADERS = ["colour", "songs", "segments", "% audio", "% MIDI", "% lyrics"]
COVERAGE_HEADERS = ["colour", "segments", "% audio", "% MIDI", "% lyrics"]
ENCODE_HEADERS = ["table", "encoded", "absent", "failed", "up to date", "re-encoded (input changed)", "rows", "state",
                  "seconds", "seg/s"]
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


def new_bar(label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=True)


@contextmanager
def counting_progress(label: str, total: int | None = None) -> Iterator[Callable[[int, int | None], None]]:
    """A transient bar on stderr, driven by the library's `progress(done, total)` callback it yields."""
    bar = new_bar(label)
    task = bar.add_task(label, total=total)
    with bar:
        yield lambda done, new_total: bar.update(task, completed=done, total=new_total)


class _RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} seg/s" if speed else "- seg/s", style="progress.data.speed")


@contextmanager
def encode_progress() -> Iterator[Callable[[str, int, int], None]]:
    """One bar per feature table on stderr, driven by the encode job's `progress(table, done, pending)`."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=err_console) as bar:
        tasks: dict[str, int] = {}

        def update(table: str, done: int, pending: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=pending)
            bar.update(tasks[table], completed=done)

        yield update


# -- data: synth, ingest, info -------------------------------------------------------------
