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
    pretty_exceptions_show_locals=False,
    help="chromatic-store: an embedding feature store and fusion trainer for music segments.",
)
# Piped output (logs, CI) gets wide tables instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)
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

def _synth_summary_rows(summary) -> list[list]:
    rows = []
    for color, counts in summary.per_color.items():
        rows.append([color, counts.songs, counts.segments,
                     *(f"{100 * counts.coverage(m):.0f}" for m in ("audio", "midi", "lyrics"))])
    total = summary.total
    rows.append(["all", total.songs, total.segments,
                 *(f"{100 * total.coverage(m):.0f}" for m in ("audio", "midi", "lyrics"))])
    return rows


@app.command("synth")
@friendly_errors
def synth_command(
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write (upstream layout).")] = Path("corpus.parquet"),
    songs: Annotated[int, typer.Option(min=1, help="Number of songs; colours are spread evenly.")] = 40,
    seed: Annotated[int, typer.Option(min=0, help="Same seed, same corpus.")] = 0,
    min_seconds: Annotated[float, typer.Option(min=0.1, help="Shortest segment.")] = 5.0,
    max_seconds: Annotated[float, typer.Option(min=0.1, help="Longest segment (most stay near the shortest).")] = 30.0,
    min_segments: Annotated[int, typer.Option(min=1, help="Fewest segments per song.")] = 6,
    max_segments: Annotated[int, typer.Option(min=1, help="Most segments per song.")] = 12,
    json_out: JsonOpt = False,
):
    """Write a synthetic corpus (audio, MIDI, lyrics, concept, labels) to ingest with no real data.

    Examples: chromatic synth --songs 40 --seed 0 --out corpus.parquet;
    chromatic synth --songs 8 --max-seconds 8 --out tiny.parquet
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from featurestore.synth import SynthConfig, write_corpus

    config = SynthConfig(songs=songs, seed=seed, segments_per_song=(min_segments, max_segments),
                         min_seconds=min_seconds, max_seconds=max_seconds)
    bar = Progress(TextColumn("synth songs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err_console, transient=True)
    task = bar.add_task("synth", total=songs)
    with bar:
        summary = write_corpus(config, out, progress=lambda done, total: bar.update(task, completed=done))
    if json_out:
        print_json(summary.to_dict())
        return
    console.print(rich_table("synthetic corpus", ["colour", "songs", "segments", "% audio", "% MIDI", "% lyrics"],
                             _synth_summary_rows(summary)))
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


@app.command("ingest")
@friendly_errors
def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="Upstream-layout .parquet files and/or folders.")],
    manifest: Annotated[
        Optional[Path], typer.Option(help="CSV manifest for folder inputs (default: FOLDER/manifest.csv).")
    ] = None,
    source: Annotated[Optional[str], typer.Option(help="Label stored in segments.source (default: file name).")] = None,
    batch_mb: Annotated[float, typer.Option(min=0.01, help="Media megabytes per batch; bounds memory.")] = 8.0,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Ingest segments (labels, text, audio, MIDI) into the store; re-running changes nothing.

    Examples: chromatic ingest data/training_segments_media.parquet;
    chromatic ingest my_songs/ --manifest my_songs/segments.csv
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from featurestore.ingest import IngestConfig, ingest_paths

    config = IngestConfig(batch_bytes=int(batch_mb * 2**20), manifest=manifest, source=source)
    bar = Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err_console, transient=True)
    task = bar.add_task("ingest", total=None)
    with bar:
        summary = ingest_paths(open_store(store), paths, config,
                               progress=lambda done, total: bar.update(task, completed=done, total=total))
    if json_out:
        print_json(summary.to_dict())
        return
    console.print(rich_table("ingest", ["", "value"], _ingest_summary_rows(summary)))


@app.command("info")
@friendly_errors
def info_command(store: StoreOpt = None, json_out: JsonOpt = False):
    """Tables with row counts, and per-colour coverage of audio, MIDI and lyrics."""
    from featurestore.info import store_info

    info = store_info(open_store(store, create=False))
    if json_out:
        print_json(info)
        return
    console.print(f"store: {info['uri']}")
    console.print(rich_table("tables", ["table", "kind", "rows"],
                             [[t["table"], t["kind"], t["rows"]] for t in info["tables"]]))
    rows = [[c["color"], c["segments"], f"{c['audio_pct']:.1f}", f"{c['midi_pct']:.1f}", f"{c['lyrics_pct']:.1f}"]
            for c in info["coverage"]]
    console.print(rich_table("coverage", ["colour", "segments", "% audio", "% MIDI", "% lyrics"], rows))


# == encoders: encode, versions =================================================

_ENCODE_HEADERS = ["table", "encoded", "absent", "failed", "had rows", "rows", "state", "seconds", "seg/s"]


@app.command("encode")
@friendly_errors
def encode_command(
    encoder: Annotated[str, typer.Option("--encoder", help="Encoder name, e.g. clap, pianoroll, minilm.")],
    version: Annotated[str, typer.Option("--version", help="Version label, e.g. v1; immutable once written.")],
    model: Annotated[Optional[str], typer.Option(help="Hub id or local directory of the weights.")] = None,
    param: Annotated[
        Optional[list[str]], typer.Option("--param", help="Encoder param KEY=VALUE; repeat for several.")
    ] = None,
    modality: Annotated[
        Optional[list[str]], typer.Option("--modality", help="Only this modality; repeatable (default: all it reads).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Items per model batch.")] = 32,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    limit: Annotated[Optional[int], typer.Option(min=0, help="Encode at most N pending segments per table.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad input instead of recording it.")] = False,
    workers: Annotated[
        Optional[int], typer.Option(min=0, help="Spawned processes for decode/resample (0: inline; default min(2, CPUs)).")
    ] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Encode every segment with one encoder version into its feature tables; re-running resumes.

    Examples: chromatic encode --encoder pianoroll --version v2 --param resolution_ms=50;
    chromatic encode --encoder clap --version v1 --model laion/larger_clap_music --device cuda
    """
    from encoders.job import EncodeConfig, run_encode
    from encoders.registry import parse_param_pairs

    options = {"workers": workers} if workers is not None else {}
    config = EncodeConfig(
        encoder=encoder, version=version, params=parse_param_pairs(param or []), model=model,
        modalities=tuple(modality or ()), batch_size=batch_size, device=device, limit=limit, strict=strict,
        **options,
    )
    summary = run_encode(open_store(store, create=False), config)  # progress goes to stderr
    if json_out:
        print_json(summary.to_dict())
        return
    _print_encode_summary(summary, title=f"encode {summary.encoder}:{summary.version}")


def _print_encode_summary(summary, title: str) -> None:
    rows = [[t.table, t.encoded, t.absent, t.failed_total, t.skipped_existing, t.rows, t.state,
             f"{t.seconds:.1f}", f"{t.segments_per_s:.1f}"] for t in summary.tables]
    console.print(rich_table(title, _ENCODE_HEADERS, rows))
    for t in summary.tables:
        for reason, count in sorted(t.failed.items(), key=lambda kv: -kv[1]):
            console.print(f"  {t.table}: {count} x error: {reason}")


@app.command("versions")
@friendly_errors
def versions_command(store: StoreOpt = None, json_out: JsonOpt = False):
    """Every feature table: encoder config, rows, state and coverage overall and per colour."""
    from featurestore.coverage import list_versions

    versions = list_versions(open_store(store, create=False))
    if json_out:
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

# == fusion: train, eval, compare ===============================================

_SPEC_HELP = "ENCODER:VERSION of the {} feature table, e.g. {}; leave out to train without it."


def _epoch_line(row: dict, epochs: int) -> str:
    def pct(value):
        return "  n/a" if value is None else f"{100 * value:5.1f}"

    return (f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  "
            f"mode acc {pct(row['val_mode_acc'])}%  colour acc {pct(row['val_color_acc'])}%  {row['seconds']:.1f}s")


def _print_metrics(title: str, metrics: dict) -> None:
    from fusion.metrics import METRICS_TABLE_COLUMNS, metrics_table_rows

    console.print(rich_table(title, METRICS_TABLE_COLUMNS, metrics_table_rows(metrics)))


@app.command("train")
@friendly_errors
def train_command(
    audio: Annotated[Optional[str], typer.Option(help=_SPEC_HELP.format("audio", "clap:v1"))] = None,
    midi: Annotated[Optional[str], typer.Option(help=_SPEC_HELP.format("MIDI", "pianoroll:v2"))] = None,
    lyrics: Annotated[Optional[str], typer.Option(help=_SPEC_HELP.format("lyrics", "minilm:v1"))] = None,
    concept: Annotated[Optional[str], typer.Option(help=_SPEC_HELP.format("concept", "minilm:v1"))] = None,
    fusion: Annotated[
        str, typer.Option(help="concat (late concatenation) or gated (per-sample input weights).")
    ] = "concat",
    epochs: Annotated[int, typer.Option(min=1, help="Maximum epochs (early stopping may end sooner).")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the song split, initialisation and batching.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Segments per batch.")] = 128,
    lr: Annotated[float, typer.Option(min=0.0, help="AdamW learning rate.")] = 1e-3,
    patience: Annotated[
        int, typer.Option(min=1, help="Epochs without a better validation score before stopping.")
    ] = 10,
    val_fraction: Annotated[float, typer.Option(help="Share of each colour's songs held out for validation.")] = 0.2,
    modality_dropout: Annotated[
        float, typer.Option(min=0.0, max=0.99, help="Per-sample chance of hiding each present input in training.")
    ] = 0.15,
    solo_dropout: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Per-sample chance of keeping only one present input in training.")
    ] = 0.3,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    threads: Annotated[
        int, typer.Option(min=0, help="Torch CPU threads (0: one per core; 1 is faster on a busy shared CPU).")
    ] = 0,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Train a fusion model on stored feature tables; writes a run (weights, manifest, metrics, report).

    Example: chromatic train --audio clap:v1 --midi pianoroll:v2 --lyrics minilm:v1 --concept minilm:v1
    """
    from fusion.train import TrainConfig, train

    inputs = {k: v for k, v in {"audio": audio, "midi": midi, "lyrics": lyrics, "concept": concept}.items() if v}
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                         val_fraction=val_fraction, seed=seed, fusion=fusion, device=device, threads=threads,
                         modality_dropout=modality_dropout, solo_dropout=solo_dropout)
    result = train(open_store(store, create=False), inputs, config,
                   progress=lambda row: err_console.print(_epoch_line(row, epochs)))
    if json_out:
        print_json({"run_id": result.run_id, "run_dir": str(result.run_dir), "metrics": result.metrics,
                    "history": result.history, "summary": result.summary})
        return
    summary = result.summary
    _print_metrics(f"{result.run_id}: validation ({summary['val']} segments, best epoch {summary['best_epoch']})",
                   result.metrics)
    for table in summary["incomplete_tables"]:
        console.print(f"[yellow]warning:[/] {table} is still being encoded; its missing segments were masked")
    for reason, count in sorted(summary["skipped_by_reason"].items()):
        console.print(f"[yellow]{count} segment(s) skipped or masked: {reason}[/] (listed in manifest.json)")
    console.print(f"run: {result.run_dir}\nreport: {result.run_dir / 'report.png'}")


@app.command("eval")
@friendly_errors
def eval_command(
    run_id: Annotated[str, typer.Argument(help="Run id printed by `chromatic train` (run-YYYYmmdd-HHMMSS-xxxxxx).")],
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Re-compute a run's validation metrics from the store at the recorded Lance versions."""
    from fusion.train import evaluate_run

    result = evaluate_run(open_store(store, create=False), run_id)
    for table, (recorded, current) in sorted(result.moved_tables.items()):
        err_console.print(f"[yellow]warning:[/] {table} is now at Lance version {current}; the run was trained on "
                          f"version {recorded}, which is what was evaluated. Re-train to use the newer data.")
    if json_out:
        print_json({"run_id": result.run_id, "metrics": result.metrics, "stored_metrics": result.stored_metrics,
                    "moved_tables": result.moved_tables})
        return
    _print_metrics(f"{result.run_id}: validation (re-computed)", result.metrics)
    same = "match" if result.metrics == result.stored_metrics else "DIFFER from"
    console.print(f"re-computed metrics {same} the stored metrics.json")

_VERSIONS_HELP = "Comma list of ENCODER:VERSION to try for {}; 'none' = leave it out."


def _version_list(value: str | None) -> list[str | None] | None:
    """'clap:v1,none' -> ['clap:v1', None]; None when the option was not given."""
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    return [None if item.lower() == "none" else item for item in items]


class _CompareProgress:
    """A rich bar over all epochs of all combinations (on stderr, so --json stays clean)."""

    def __init__(self, epochs: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.epochs = epochs
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err_console, transient=True,
        )
        self.task = None

    def __call__(self, event: dict) -> None:
        if self.task is None:
            self.task = self.bar.add_task("compare", total=event["total"] * self.epochs)
        label = f"[{event['index']}/{event['total']}] {event['combination']}"
        if event["stage"] == "epoch":
            self.bar.update(self.task, advance=1, description=f"{label} epoch {event.get('epoch')}")
        else:  # early stopping ends a run before its last epoch
            self.bar.update(self.task, completed=event["index"] * self.epochs, description=label)


@app.command("compare")
@friendly_errors
def compare_command(
    audio: Annotated[Optional[str], typer.Option(help=_VERSIONS_HELP.format("audio"))] = None,
    midi: Annotated[Optional[str], typer.Option(help=_VERSIONS_HELP.format("MIDI"))] = None,
    lyrics: Annotated[Optional[str], typer.Option(help=_VERSIONS_HELP.format("lyrics"))] = None,
    concept: Annotated[Optional[str], typer.Option(help=_VERSIONS_HELP.format("concept"))] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Epochs per combination.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the song split and training.")] = None,
    modality_dropout: Annotated[
        float, typer.Option(min=0.0, max=0.99, help="Per-sample chance of hiding each present input in training.")
    ] = 0.15,
    solo_dropout: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Per-sample chance of keeping only one present input in training.")
    ] = 0.3,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Train one model per combination of versions (same split and seed) and compare accuracies.

    Example: chromatic compare --audio clap:v1,mert:v1,none --midi pianoroll:v1,pianoroll:v2
    --lyrics minilm:v1 --concept minilm:v1 --epochs 30
    """
    from fusion.compare import COMPARE_HEADERS, compare, compare_table_rows
    from fusion.train import TrainConfig

    options = {"audio": audio, "midi": midi, "lyrics": lyrics, "concept": concept}
    grid = {name: _version_list(value) for name, value in options.items() if value is not None}
    given = {"epochs": epochs, "seed": seed}
    config = TrainConfig(**{k: v for k, v in given.items() if v is not None}, threads=1,
                         modality_dropout=modality_dropout, solo_dropout=solo_dropout)
    progress = _CompareProgress(config.epochs)
    with progress.bar:
        rows = compare(open_store(store, create=False), grid, config, progress=progress)
    if json_out:
        print_json(rows)
        return
    trained = [row for row in rows if row["status"] == "ok"]
    failed = [row for row in rows if row["status"] != "ok"]
    title = f"compare: validation accuracies (seed {config.seed}, same song split for every row)"
    console.print(rich_table(title, COMPARE_HEADERS, compare_table_rows(trained)))
    for row in failed:
        err_console.print(f"[red]failed[/] {row['combination']}: {row['status']}")
    console.print(f"{len(trained)} of {len(rows)} combinations trained, {len(failed)} failed.")

# == scoring: export, score, embed ==============================================

_RUN_HELP = "Run id printed by `chromatic train` (run-YYYYmmdd-HHMMSS-xxxxxx), or a run directory."


@app.command("export")
@friendly_errors
def export_command(
    run: Annotated[str, typer.Argument(help=_RUN_HELP)],
    opset: Annotated[int, typer.Option(min=7, help="ONNX opset version.")] = 18,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Export a run to one self-contained model.onnx, checked against torch on every input-mask pattern.

    Example: chromatic export run-20250101-120000-abc123 (train already does this; use it to re-export)
    """
    from fusion.export import export_info, export_onnx
    from fusion.scorer import resolve_model_dir

    path = export_onnx(resolve_model_dir(run, store), opset=opset)
    info = export_info(path.parent)
    if json_out:
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


@app.command("score")
@friendly_errors
def score_command(
    run: Annotated[str, typer.Argument(help=_RUN_HELP)],
    target: Annotated[str, typer.Option("--target", help="Target colour, e.g. Green (case-insensitive).")],
    midi: Annotated[Optional[list[Path]], typer.Argument(help="MIDI files, one candidate each.")] = None,
    concept: Annotated[Optional[str], typer.Option(help="Concept text shared by every candidate.")] = None,
    audio: Annotated[
        Optional[list[Path]], typer.Option("--audio", help="Audio file; repeat. Pairs with the MIDI files in order.")
    ] = None,
    lyrics: Annotated[Optional[str], typer.Option(help="Lyrics shared by every candidate.")] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Rank candidate MIDI/audio files by how well they match a target colour (ONNX model, one batch).

    Examples: chromatic score run-20250101-120000-abc123 a.mid b.mid c.mid --target Green --concept "a garden";
    chromatic score store/_chromatic/models/RUN --audio take1.wav --audio take2.wav --target blue --json
    """
    from fusion.scorer import ScoreFilesRequest, score_files

    request = ScoreFilesRequest(run=run, target=target, midi=tuple(midi or ()), audio=tuple(audio or ()),
                                lyrics=lyrics, concept=concept, store_uri=store)
    results = score_files(request)
    if json_out:
        print_json([r.to_dict() for r in results])
        return
    headers = ["rank", "candidate", "match", "predicted", f"p({target})",
               "top modes (temporal / spatial / ontological)", "error"]
    console.print(rich_table(f"chromatic match to {target}", headers, _score_rows(results)))


@app.command("embed")
@friendly_errors
def embed_command(
    run: Annotated[str, typer.Argument(help="Run id printed by `chromatic train`.")],
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Write a run's fused embedding of every segment to feature table fused.<run>.v1 (L2-normalised).

    Example: chromatic embed run-20250101-120000-abc123, then chromatic neighbors --table fused.<run>.v1 ...
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from featurestore.registry import get_encoder_record
    from fusion.fused_space import embed_run

    opened = open_store(store, create=False)
    bar = Progress(TextColumn("embed"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err_console, transient=True)
    task = bar.add_task("embed", total=None)
    with bar:
        name = embed_run(opened, run, progress=lambda done, total: bar.update(task, completed=done, total=total))
    record = get_encoder_record(opened, name)
    if json_out:
        print_json(record.to_row() | {"params": record.params_dict})
        return
    masked = {k: v for k, v in record.params_dict["masked_non_finite"].items() if v}
    console.print(f"wrote {name}: {record.rows} segments, {record.present} embedded, {record.failed} failed, "
                  f"{record.shape[0]}-d unit vectors (cosine)")
    for input_name, count in sorted(masked.items()):
        console.print(f"[yellow]{count} segment(s) had non-finite {input_name} values:[/] embedded with it masked")

# == search: neighbors, index, inspect ==========================================

_NEIGHBOR_HEADERS = ["rank", "segment_id", "song_id", "colour", "start–end (s)", "distance"]


def _span(start, end) -> str:
    if start is None or end is None:
        return "-"
    return f"{start:.1f}–{end:.1f}"


@app.command("neighbors")
@friendly_errors
def neighbors_command(
    table: Annotated[Optional[str], typer.Option("--table", help="Feature table, e.g. audio.clap.v1.")] = None,
    space: Annotated[Optional[str], typer.Option("--space", help="ENCODER:VERSION, e.g. clap:v1 (one table).")] = None,
    segment: Annotated[Optional[str], typer.Option("--segment", help="Query by this segment's stored vector.")] = None,
    midi: Annotated[Optional[Path], typer.Option("--midi", help="Query by a .mid file, encoded like the table.")] = None,
    audio: Annotated[Optional[Path], typer.Option("--audio", help="Query by an audio file, encoded like the table.")] = None,
    text: Annotated[Optional[str], typer.Option("--text", help="Query by text (lyrics/concept tables).")] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many neighbours.")] = 10,
    color: Annotated[Optional[list[str]], typer.Option("--color", help="Only this colour; repeatable.")] = None,
    song: Annotated[Optional[list[str]], typer.Option("--song", help="Only this song id; repeatable.")] = None,
    where: Annotated[Optional[str], typer.Option("--where", help="SQL over segments columns, e.g. \"bpm > 120\".")] = None,
    include_self: Annotated[bool, typer.Option("--include-self", help="Keep the query segment in the results.")] = False,
    exact: Annotated[
        Optional[bool], typer.Option("--exact/--ann", help="Force exact or ANN search (default: by size).")
    ] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Nearest segments to a segment, a MIDI/audio file or a text, with colour/song/SQL prefilters.

    Examples: chromatic neighbors --space clap:v1 --segment red-song0-seg1 --color Green -k 5;
    chromatic neighbors --table midi.midistats.v1 --midi riff.mid --where "bpm > 100" --json
    """
    from encoders.query import NeighborQuery, find_neighbors

    request = NeighborQuery(
        table=table, space=space, segment=segment, midi_path=midi, audio_path=audio, text=text, k=k,
        colors=tuple(color or ()), songs=tuple(song or ()), where=where, include_self=include_self, exact=exact,
    )
    resolved, found = find_neighbors(open_store(store, create=False), request)
    if json_out:
        print_json({"table": resolved, "neighbors": [n.to_dict() for n in found]})
        return
    if not found:
        console.print(f"no neighbours in {resolved}: no segment with a vector passes the filters")
        return
    rows = [[n.rank, n.segment_id, n.song_id, n.color, _span(n.start_s, n.end_s), f"{n.distance:.4f}"] for n in found]
    console.print(rich_table(f"neighbours in {resolved}", _NEIGHBOR_HEADERS, rows))


@app.command("index")
@friendly_errors
def index_command(
    table: Annotated[str, typer.Argument(help="Feature table to index, e.g. audio.clap.v1.")],
    min_rows: Annotated[
        int, typer.Option(min=0, help="Fewer present vectors than this stay exact (no ANN index).")
    ] = 10_000,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Build the cosine ANN index (large tables) and scalar indexes for the search filters.

    Example: chromatic index audio.clap.v1
    """
    from featurestore.search import IndexSettings, build_index

    summary = build_index(open_store(store, create=False), table, IndexSettings(min_rows=min_rows))
    if json_out:
        print_json(summary)
        return
    rows = [[key, ", ".join(value) if isinstance(value, list) else value] for key, value in summary.items()]
    console.print(rich_table(f"index {table}", ["", "value"], rows))


@app.command("inspect")
@friendly_errors
def inspect_command(
    table: Annotated[str, typer.Argument(help="Feature table to diagnose, e.g. audio.clap.v1.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Neighbours per k-NN vote.")] = 10,
    out: Annotated[Path, typer.Option("--out", help="Where to write the 2-D PCA map (PNG).")] = Path("map.png"),
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Coverage per colour, k-NN colour accuracy with neighbours from other songs, and a 2-D map.

    Example: chromatic inspect audio.clap.v1 --k 10 --out clap_map.png
    """
    from featurestore.diagnostics import inspect_table

    report = inspect_table(open_store(store, create=False), table, k=k, out_png=out)
    if json_out:
        print_json(report)
        return
    _print_inspect(report)


def _print_inspect(report: dict) -> None:
    knn = report["knn"]
    per_color = knn.get("per_color", {})
    rows = [[color, c["segments"], c["present"], f"{c['present_pct']:.1f}",
             " ".join(f"{why}={n}" for why, n in c["missing"].items()) or "-",
             f"{100 * per_color[color]:.1f}" if color in per_color else "-"]
            for color, c in report["coverage"].items()]
    headers = ["colour", "segments", "with vector", "% present", "missing (why)", f"% {knn['k']}-NN correct"]
    console.print(rich_table(f"inspect {report['table']} ({report['dim']}-d)", headers, rows))
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


# == demo =======================================================================


def _print_demo_step(step: str, payload) -> None:
    """Render one step of fusion.demo.run_demo."""
    from fusion.compare import COMPARE_HEADERS, compare_table_rows

    if step == "synth":
        console.print(rich_table("1. synthetic corpus", ["colour", "songs", "segments", "% audio", "% MIDI",
                                                          "% lyrics"], _synth_summary_rows(payload)))
    elif step == "ingest":
        console.print(rich_table("2. ingest", ["", "value"], _ingest_summary_rows(payload)))
    elif step == "info":
        rows = [[c["color"], c["segments"], f"{c['audio_pct']:.0f}", f"{c['midi_pct']:.0f}", f"{c['lyrics_pct']:.0f}"]
                for c in payload["coverage"]]
        console.print(rich_table("3. coverage in the store", ["colour", "segments", "% audio", "% MIDI", "% lyrics"],
                                 rows))
    elif step == "encode":
        _print_encode_summary(payload, title=f"4. encode {payload.encoder}:{payload.version}")
    elif step == "compare":
        console.print(rich_table("5. train: all inputs vs fewer, same song split (validation accuracies)",
                                 COMPARE_HEADERS, compare_table_rows(payload)))
    elif step == "run":
        console.print(f"model run {payload['run_id']}: report image {Path(payload['run_dir']) / 'report.png'}")
    elif step == "score":
        _print_demo_scores(payload)
    elif step == "neighbors":
        rows = [[n.rank, n.segment_id, n.song_id, n.color, _span(n.start_s, n.end_s), f"{n.distance:.4f}"]
                for n in payload["neighbors"]]
        console.print(rich_table(f"7. neighbours of {payload['query']} within {payload['color']} in {payload['table']}",
                                 _NEIGHBOR_HEADERS, rows))


def _print_demo_scores(payload: dict) -> None:
    target = payload["target"]
    rows = [[r.rank, r.id, payload["truth"].get(r.id), r.match, r.predicted_color, r.p_target, r.error]
            for r in payload["results"]]
    headers = ["rank", "candidate (held-out song)", "true colour", "match", "predicted", f"p({target})", "error"]
    console.print(rich_table(f"6. score: MIDI candidates ranked against {target} (concept: {payload['concept']!r})",
                             headers, rows))


@app.command("demo")
@friendly_errors
def demo_command(
    songs: Annotated[int, typer.Option(min=8, help="Songs in the synthetic corpus.")] = 40,
    seed: Annotated[int, typer.Option(min=0, help="Corpus, split and training seed.")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Maximum training epochs per model.")] = 40,
    target: Annotated[str, typer.Option(help="Colour the candidates are scored against.")] = "Green",
    store: StoreOpt = None,
):
    """The main job end to end on a synthetic corpus, offline: synth, ingest, encode, train, score, neighbours.

    Re-running resumes: ingest changes nothing, encoders encode nothing new, models train afresh.
    """
    from fusion.demo import DemoConfig, run_demo

    handle = open_store(store)
    console.print(f"[bold]chromatic demo[/] on store {handle.uri}")
    for step, payload in run_demo(handle, DemoConfig(songs=songs, seed=seed, epochs=epochs, target=target),
                                  show_progress=True):
        _print_demo_step(step, payload)
    console.print("[bold green]demo finished.[/] Try: chromatic info, chromatic versions, "
                  "chromatic neighbors --space spectral:v1 --segment ID --color Green")


if __name__ == "__main__":
    app()
