"""The typer app, the options commands share, and the helpers every command uses.

Library errors (ChromaticError), and Lance errors from a damaged store, become a
red message and exit code 2, never a traceback (`friendly_errors`).
"""

from __future__ import annotations

import functools
import os
from typing import Annotated, Optional

import typer

from featurestore.errors import ChromaticError, damage_error

from render import console, err_console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="chromatic-store: an embedding feature store and fusion trainer for music segments.",
)
StoreOpt = Annotated[
    Optional[str],
    typer.Option("--store", help="Store path or URI (default: $CHROMATIC_STORE or ./store)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DeviceOpt = Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:N or mps.")]
ModalityDropoutOpt = Annotated[
    Optional[float],
    typer.Option(min=0.0, max=0.99, help="Per-sample chance of hiding each present input in training."),
]
FoldsOpt = Annotated[Optional[int], typer.Option(
    min=1, help="1: one held-out split (--val-fraction); K > 1: song-grouped K-fold, one run per fold, "
    "metrics as mean ± sd over folds.")]
SoloDropoutOpt = Annotated[
    Optional[float],
    typer.Option(min=0.0, max=1.0, help="Per-sample chance of keeping only one present input in training."),
]


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            console.print(f"chromatic-store {version('chromatic-store')}")
        except PackageNotFoundError:
            console.print("chromatic-store (not installed as a package: run `pip install -e .`)")
        raise typer.Exit()


def friendly_errors(fn):
    """Show ChromaticError as a one-paragraph message with exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ChromaticError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None
        except (OSError, RuntimeError, ValueError) as exc:  # a Lance error from outside featurestore.Store
            damaged = damage_error(exc)
            if damaged is None:
                raise
            from featurestore.doctor import name_damaged_tables

            err_console.print(f"[bold red]error:[/] {name_damaged_tables(damaged, kwargs.get('store'))}")
            raise typer.Exit(2) from None

    return wrapper


def given(**options) -> dict:
    """The options the user set: an unset one is None and takes its config dataclass's default."""
    return {name: value for name, value in options.items() if value is not None}


@app.callback()
def main(
    storage_option: Annotated[
        Optional[list[str]],
        typer.Option("--storage-option", help="Object-store option key=value for s3:// stores (repeat), e.g. "
                     "aws_endpoint=http://127.0.0.1:9000, aws_region=eu-west-1, allow_http=true; "
                     "AWS_* environment variables are read too."),
    ] = None,
    lease_ttl: Annotated[
        Optional[float],
        typer.Option(min=1.0, help="Seconds a writer lease on an s3:// store outlives its last heartbeat [60]."),
    ] = None,
    store: StoreOpt = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
):
    """chromatic-store: an embedding feature store and fusion trainer for music segments."""
    from featurestore.objectstore import StoreOptions

    if store:
        # Before the subcommand it is the default of every command, the same as $CHROMATIC_STORE.
        from featurestore.store import STORE_ENV

        os.environ[STORE_ENV] = store

    global _STORE_OPTIONS
    try:
        _STORE_OPTIONS = StoreOptions.from_cli(storage_option or (), **given(lease_ttl_s=lease_ttl))
    except ChromaticError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None


_STORE_OPTIONS = None  # set by `main` from the options given before the command


def store_options():
    """The store options given before the command (`chromatic --storage-option k=v encode …`)."""
    from featurestore.objectstore import StoreOptions

    return _STORE_OPTIONS or StoreOptions()


def open_store(store: str | None, create: bool = True):
    from featurestore.store import Store

    return Store.open(store, create=create, options=store_options())


_SPEC_HELP = ("ENCODER:VERSION of the {0} feature table, e.g. {1}; A:V1|B:V1 fills each segment from the first "
              "table that has it; repeat the option for several {0} inputs in one model (named {2}.ENCODER, "
              "e.g. {2}.{3}); leave out to train without it.")
AudioSpecOpt = Annotated[Optional[list[str]], typer.Option(help=_SPEC_HELP.format("audio", "clap:v1", "audio", "clap"))]
MidiSpecOpt = Annotated[Optional[list[str]], typer.Option(
    help=_SPEC_HELP.format("MIDI", "pianoroll:v2", "midi", "pianoroll"))]
LyricsSpecOpt = Annotated[Optional[list[str]], typer.Option(
    help=_SPEC_HELP.format("lyrics", "minilm:v1", "lyrics", "minilm"))]
ConceptSpecOpt = Annotated[Optional[list[str]], typer.Option(
    help=_SPEC_HELP.format("concept", "minilm:v1", "concept", "minilm"))]

RUN_HELP = "Run id printed by `chromatic train` (run-YYYYmmdd-HHMMSS-xxxxxx), or a run directory."

