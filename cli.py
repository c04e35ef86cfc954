"""`chromatic`: a thin typer app. Parse, build a config, call one library function, print.

Only this module imports typer. Library errors (ChromaticError) become a red
message and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from featurestore.errors import ChromaticError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="chromatic-store: an embedding feature store and fusion trainer for music segments.",
)
console = Console()
err_console = Console(stderr=True)

StoreOpt = Annotated[
    Optional[str],
    typer.Option("--store", help="Store path or URI (default: $CHROMATIC_STORE or ./store)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def friendly_errors(fn):
    """Show ChromaticError as a one-paragraph message with exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ChromaticError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None

    return wrapper


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


def open_store(store: str | None, create: bool = True):
    from featurestore.store import Store

    return Store.open(store, create=create)


# == data: synth, ingest, info ==================================================

# == encoders: encode, versions =================================================

# == fusion: train, eval, compare ===============================================

# == scoring: export, score, embed ==============================================

# == search: neighbors, index, inspect ==========================================

# == demo =======================================================================


if __name__ == "__main__":
    app()
