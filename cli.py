"""`chromatic`: a thin typer app. Parse, build a config, call one library function, hand the result to render.

Only this module imports typer; how results look lives in render.py. Library
errors (ChromaticError), and Lance errors from a damaged store, become a red
message and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from featurestore.errors import ChromaticError, damage_error
import render

# Re-exported so commands can keep using cli's helpers by these names.
from render import console, err_console, print_json, rich_table  # noqa: F401

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


# == data: synth, ingest, info ==================================================

@app.command("synth")
@friendly_errors
def synth_command(
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write (upstream layout).")] = Path("corpus.parquet"),
    songs: Annotated[Optional[int], typer.Option(min=1, help="Number of songs; colours are spread evenly.")] = None,
    seed: Annotated[Optional[int], typer.Option(min=0, help="Same seed, same corpus.")] = None,
    min_seconds: Annotated[Optional[float], typer.Option(min=0.1, help="Shortest segment.")] = None,
    max_seconds: Annotated[
        Optional[float], typer.Option(min=0.1, help="Longest segment (most stay near the shortest).")
    ] = None,
    min_segments: Annotated[Optional[int], typer.Option(min=1, help="Fewest segments per song.")] = None,
    max_segments: Annotated[Optional[int], typer.Option(min=1, help="Most segments per song.")] = None,
    json_out: JsonOpt = False,
):
    """Write a synthetic corpus (audio, MIDI, lyrics, concept, labels) to ingest with no real data.

    Examples: chromatic synth --songs 40 --seed 0 --out corpus.parquet;
    chromatic synth --songs 8 --max-seconds 8 --out tiny.parquet
    """
    from synth import SynthConfig, write_corpus

    low, high = SynthConfig.segments_per_song
    config = SynthConfig(**given(songs=songs, seed=seed, min_seconds=min_seconds, max_seconds=max_seconds),
                         segments_per_song=(min_segments or low, max_segments or high))
    with render.counting_progress("synth songs", total=config.songs) as progress:
        summary = write_corpus(config, out, progress=progress)
    render.print_synth_summary(summary, as_json=json_out)


@app.command("ingest")
@friendly_errors
def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="Upstream-layout .parquet files and/or folders.")],
    manifest: Annotated[
        Optional[Path], typer.Option(help="CSV manifest for folder inputs (default: FOLDER/manifest.csv).")
    ] = None,
    source: Annotated[Optional[str], typer.Option(help="Label stored in segments.source (default: file name).")] = None,
    batch_mb: Annotated[Optional[float], typer.Option(min=0.01, help="Media megabytes per batch; bounds memory.")] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Ingest segments (labels, text, audio, MIDI) into the store; re-running changes nothing.

    A folder holds audio (wav/flac) and MIDI files plus a CSV manifest, one row per segment.
    Required columns: segment_id, song_id, colour (or color). Optional: audio_file, midi_file
    (paths relative to the folder), lyrics, concept, start_s, end_s, bpm, key (e.g. "F# minor").

    Examples: chromatic ingest data/training_segments_media.parquet;
    chromatic ingest my_songs/ --manifest my_songs/segments.csv
    """
    from featurestore.ingest import IngestConfig, ingest_paths

    batch_bytes = None if batch_mb is None else int(batch_mb * 2**20)
    config = IngestConfig(**given(batch_bytes=batch_bytes), manifest=manifest, source=source)
    with render.counting_progress("ingest") as progress:
        summary = ingest_paths(open_store(store), paths, config, progress=progress)
    render.print_ingest_summary(summary, as_json=json_out)


@app.command("info")
@friendly_errors
def info_command(store: StoreOpt = None, json_out: JsonOpt = False):
    """Tables with row counts, and per-colour coverage of audio, MIDI and lyrics."""
    from featurestore.info import store_info

    info = store_info(open_store(store, create=False))
    render.print_info(info, as_json=json_out)


@app.command("optimize")
@friendly_errors
def optimize_command(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Remove versions older than this (e.g. 7d, 12h, 0s); tagged ones stay.")
    ] = "7d",
    table: Annotated[Optional[list[str]], typer.Option("--table", help="Only this table; repeatable.")] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Compact every table's fragments and remove old versions (never one a model run pinned).

    Examples: chromatic optimize; chromatic optimize --older-than 0s --table segments
    """
    from featurestore.maintenance import OptimizeConfig, optimize_store, parse_duration

    config = OptimizeConfig(older_than=parse_duration(older_than), tables=tuple(table or ()))
    render.print_optimize(optimize_store(open_store(store, create=False), config), as_json=json_out)


@app.command("doctor")
@friendly_errors
def doctor_command(
    fix: Annotated[bool, typer.Option("--fix", help="Apply the fixes that lose nothing (partial runs, orphan tags).")] = False,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Check every table reads, the registry against the tables, stale rows, runs and locks; say how to fix each.

    Exit code 1 when it finds an error, 0 otherwise. Examples: chromatic doctor; chromatic doctor --fix --json
    """
    from featurestore.doctor import diagnose, fix_store

    opened = open_store(store, create=False)
    report = diagnose(opened)
    fixed = fix_store(opened, report) if fix else []
    render.print_doctor(report, fixed, as_json=json_out)
    if not report.healthy:
        raise typer.Exit(1)


# == encoders: encode, versions =================================================

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
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Items per model batch.")] = None,
    device: DeviceOpt = None,
    limit: Annotated[Optional[int], typer.Option(min=0, help="Encode at most N pending segments per table.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad input instead of recording it.")] = False,
    workers: Annotated[
        Optional[int], typer.Option(min=0, help="Spawned processes for decode/resample (0: inline; default: 0 on cpu, CPUs-1 with a GPU).")
    ] = None,
    engine: Annotated[str, typer.Option(help="local (this machine) or ray (a Ray cluster's actor pool).")] = "local",
    ray_address: Annotated[
        Optional[str], typer.Option(help="Ray cluster to use with --engine ray (default: $RAY_ADDRESS, else local).")
    ] = None,
    actors: Annotated[
        Optional[int], typer.Option(min=1, help="Ray actors, each loading the model once (--engine ray) [2].")
    ] = None,
    gpus_per_actor: Annotated[Optional[float], typer.Option(min=0.0, help="GPUs per Ray actor (--engine ray).")] = None,
    commit_rows: Annotated[
        Optional[int], typer.Option(min=1, help="Rows per commit with --engine ray (a killed driver loses at most "
                                    "these) [1024].")
    ] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Encode every segment with one encoder version into its feature tables; re-running resumes.

    Examples: chromatic encode --encoder pianoroll --version v2 --param resolution_ms=50;
    chromatic encode --encoder clap --version v1 --model laion/larger_clap_music --device cuda;
    chromatic --storage-option aws_region=eu-west-1 encode --encoder clap --version v1 --model /models/clap
    --store s3://bucket/store --engine ray --ray-address head:6379 --actors 4 --gpus-per-actor 1
    """
    from encoders.job import EncodeConfig, run_encode
    from encoders.registry import parse_param_pairs

    config = EncodeConfig(
        encoder=encoder, version=version, params=parse_param_pairs(param or []), model=model,
        modalities=tuple(modality or ()), limit=limit, strict=strict, workers=workers,
        **given(batch_size=batch_size, device=device),
    )
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"--engine must be local or ray, got {engine!r}")
    with render.encode_progress() as progress:  # on stderr
        if engine == "ray":
            from encoders.engine_ray import RayEngineConfig, run_encode_ray

            ray_config = RayEngineConfig(address=ray_address, **given(
                actors=actors, gpus_per_actor=gpus_per_actor, commit_rows=commit_rows))
            summary = run_encode_ray(open_store(store, create=False), config, ray_config, progress=progress)
        else:
            summary = run_encode(open_store(store, create=False), config, progress=progress)
    render.print_encode_result(summary, as_json=json_out)


@app.command("versions")
@friendly_errors
def versions_command(store: StoreOpt = None, json_out: JsonOpt = False):
    """Every feature table: encoder config, rows, state and coverage overall and per colour."""
    from featurestore.coverage import list_versions

    versions = list_versions(open_store(store, create=False))
    render.print_versions(versions, as_json=json_out)

# == fusion: train, eval, compare ===============================================

_SPEC_HELP = ("ENCODER:VERSION of the {} feature table, e.g. {}; A:V1|B:V1 fills each segment from the first "
              "table that has it; leave out to train without it.")
AudioSpecOpt = Annotated[Optional[str], typer.Option(help=_SPEC_HELP.format("audio", "clap:v1"))]
MidiSpecOpt = Annotated[Optional[str], typer.Option(help=_SPEC_HELP.format("MIDI", "pianoroll:v2"))]
LyricsSpecOpt = Annotated[Optional[str], typer.Option(help=_SPEC_HELP.format("lyrics", "minilm:v1"))]
ConceptSpecOpt = Annotated[Optional[str], typer.Option(help=_SPEC_HELP.format("concept", "minilm:v1"))]


@app.command("train")
@friendly_errors
def train_command(
    audio: AudioSpecOpt = None,
    midi: MidiSpecOpt = None,
    lyrics: LyricsSpecOpt = None,
    concept: ConceptSpecOpt = None,
    fusion: Annotated[
        Optional[str], typer.Option(help="concat (late concatenation) or gated (per-sample input weights).")
    ] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Maximum epochs (early stopping may end sooner).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the song split, initialisation and batching.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Segments per batch.")] = None,
    lr: Annotated[Optional[float], typer.Option(min=0.0, help="AdamW learning rate.")] = None,
    patience: Annotated[
        Optional[int], typer.Option(min=1, help="Epochs without a better validation score before stopping.")
    ] = None,
    val_fraction: Annotated[
        Optional[float], typer.Option(help="Share of each colour's songs held out for validation.")
    ] = None,
    folds: FoldsOpt = None,
    modality_dropout: ModalityDropoutOpt = None,
    solo_dropout: SoloDropoutOpt = None,
    preset: Annotated[Optional[str], typer.Option(
        help="A named recipe that sets the inputs (and its training settings): 'scorer' trains the model "
        "to score MIDI candidates with.")] = None,
    device: DeviceOpt = None,
    threads: Annotated[
        Optional[int], typer.Option(min=0, help="Torch CPU threads (0: one per core; 1 is faster on a busy shared CPU).")
    ] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Train a fusion model on stored feature tables; writes a run (weights, manifest, metrics, report).

    Example: chromatic train --audio clap:v1 --midi pianoroll:v2 --lyrics minilm:v1 --concept minilm:v1

    The model to score MIDI candidates with: chromatic train --preset scorer (after
    chromatic encode --encoder midistats --version v1).
    """
    from fusion.train import TrainConfig, train_folds

    inputs = _given_inputs(audio, midi, lyrics, concept)
    config = TrainConfig(**given(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                                 val_fraction=val_fraction, folds=folds, seed=seed, fusion=fusion, device=device,
                                 threads=threads, modality_dropout=modality_dropout, solo_dropout=solo_dropout))
    if preset is not None:
        inputs, config = _apply_preset(preset, inputs, config)
    results = train_folds(open_store(store, create=False), inputs, config,
                          progress=lambda row: render.print_epoch(row, config.epochs))
    if len(results) == 1:
        render.print_train_result(results[0], as_json=json_out)
    else:
        render.print_fold_results(results, as_json=json_out)


def _apply_preset(name: str, inputs: dict, config):
    """A preset's inputs and settings; refuses --audio/--midi/... beside it (the preset decides the inputs)."""
    from dataclasses import replace

    from fusion.errors import ModelError
    from fusion.presets import preset

    if inputs:
        raise ModelError(f"--preset {name} sets the inputs itself; leave out {', '.join('--' + k for k in inputs)}")
    chosen = preset(name)
    return dict(chosen.inputs), replace(config, **chosen.overrides)


@app.command("eval")
@friendly_errors
def eval_command(
    run_ids: Annotated[list[str], typer.Argument(
        help="Run id(s) printed by `chromatic train` (run-YYYYmmdd-HHMMSS-xxxxxx); give the K fold runs of "
        "`train --folds K` or `compare --folds K` for their mean ± sd.")],
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Re-compute runs' validation metrics (and the MIDI-candidate view) from the store at the recorded Lance versions."""
    from fusion.train import evaluate_run

    handle = open_store(store, create=False)
    results = [evaluate_run(handle, run_id) for run_id in run_ids]
    for result in results:
        render.warn_moved_tables(result.moved_tables)
    if len(results) == 1:
        render.print_eval_result(results[0], as_json=json_out)
    else:
        render.print_eval_folds(results, as_json=json_out)


def _given_inputs(audio: str | None, midi: str | None, lyrics: str | None, concept: str | None) -> dict[str, str]:
    return {k: v for k, v in {"audio": audio, "midi": midi, "lyrics": lyrics, "concept": concept}.items() if v}


@app.command("frame")
@friendly_errors
def frame_command(
    audio: AudioSpecOpt = None,
    midi: MidiSpecOpt = None,
    lyrics: LyricsSpecOpt = None,
    concept: ConceptSpecOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write.")] = Path("train.parquet"),
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Write the joined training frame (labels, one vector and mask column per input, lineage) to Parquet.

    The same join `chromatic train` reads, for training elsewhere; the Lance versions and encoder
    identities are in the file's `chromatic.lineage` metadata.

    Example: chromatic frame --audio clap:v1 --midi pianoroll:v2 --lyrics minilm:v1 --out train.parquet
    """
    from featurestore.frame import write_frame

    summary = write_frame(open_store(store, create=False), _given_inputs(audio, midi, lyrics, concept), out)
    render.print_frame(summary, as_json=json_out)


@app.command("report")
@friendly_errors
def report_command(
    run_id: Annotated[str, typer.Argument(help="Run id printed by `chromatic train` (run-YYYYmmdd-HHMMSS-xxxxxx).")],
    html: Annotated[Path, typer.Option("--html", help="HTML file to write (self-contained: opens offline).")],
    store: StoreOpt = None,
):
    """Write a run's view (metrics, curves, confusion matrices, wrong rows) as one self-contained HTML file.

    Example: chromatic report run-20250101-120000-abc123 --html run.html
    """
    from explorer.report_html import write_run_html

    render.print_written("run report", write_run_html(open_store(store, create=False), run_id, html))


_VERSIONS_HELP = "Comma list of ENCODER:VERSION to try for {}; 'none' = leave it out."


def _version_list(value: str | None) -> list[str | None] | None:
    """'clap:v1,none' -> ['clap:v1', None]; None when the option was not given."""
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    return [None if item.lower() == "none" else item for item in items]


@app.command("compare")
@friendly_errors
def compare_command(
    audio: Annotated[Optional[str], typer.Option(help=_VERSIONS_HELP.format("audio"))] = None,
    midi: Annotated[Optional[str], typer.Option(help=_VERSIONS_HELP.format("MIDI"))] = None,
    lyrics: Annotated[Optional[str], typer.Option(help=_VERSIONS_HELP.format("lyrics"))] = None,
    concept: Annotated[Optional[str], typer.Option(help=_VERSIONS_HELP.format("concept"))] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Epochs per combination.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the song split and training.")] = None,
    folds: FoldsOpt = None,
    modality_dropout: ModalityDropoutOpt = None,
    solo_dropout: SoloDropoutOpt = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Train one model per combination of versions (same split or folds, same seed) and compare them.

    Reports full-row accuracies, the no-lyrics subset, and the MIDI-candidate view (each validation row with
    MIDI scored with MIDI alone, as the scorer does): colour accuracy, ranking AUC, calibration error; with
    --folds K, mean ± sd over K song-grouped folds. Collapsed models (a constant fitness function) are flagged.

    Example: chromatic compare --audio clap:v1,mert:v1,none --midi pianoroll:v1,pianoroll:v2
    --lyrics minilm:v1 --concept minilm:v1 --epochs 30
    """
    from fusion.compare import compare
    from fusion.train import TrainConfig

    options = {"audio": audio, "midi": midi, "lyrics": lyrics, "concept": concept}
    grid = {name: _version_list(value) for name, value in options.items() if value is not None}
    config = TrainConfig(**given(epochs=epochs, seed=seed, folds=folds, modality_dropout=modality_dropout,
                                 solo_dropout=solo_dropout), threads=1)
    progress = render.CompareProgress(config.epochs * config.folds)
    with progress.bar:
        rows = compare(open_store(store, create=False), grid, config, progress=progress)
    render.print_compare(rows, config.seed, as_json=json_out)

# == scoring: export, score, embed ==============================================

_RUN_HELP = "Run id printed by `chromatic train` (run-YYYYmmdd-HHMMSS-xxxxxx), or a run directory."


@app.command("export")
@friendly_errors
def export_command(
    run: Annotated[str, typer.Argument(help=_RUN_HELP)],
    opset: Annotated[Optional[int], typer.Option(min=7, help="ONNX opset version.")] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Export a run to one self-contained model.onnx, checked against torch on every input-mask pattern.

    Example: chromatic export run-20250101-120000-abc123 (train already does this; use it to re-export)
    """
    from fusion.export import export_info, export_stored_run

    path = export_stored_run(run, store, store_options(), **given(opset=opset))
    info = export_info(path.parent)
    render.print_export(path, info, as_json=json_out)


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
                                lyrics=lyrics, concept=concept, store_uri=store, options=store_options())
    results = score_files(request)
    render.print_scores(results, target, as_json=json_out)
    if all(r.error is not None for r in results):  # the results above say why each one failed
        err_console.print(f"[bold red]error:[/] none of the {len(results)} candidate(s) could be scored; "
                          "see each one's error above")
        raise typer.Exit(2)


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
    from featurestore.registry import get_encoder_record
    from fusion.fused_space import embed_run

    opened = open_store(store, create=False)
    with render.counting_progress("embed") as progress:
        name = embed_run(opened, run, progress=progress)
    record = get_encoder_record(opened, name)
    render.print_embed(name, record, as_json=json_out)

# == search: neighbors, index, inspect ==========================================

@app.command("neighbors")
@friendly_errors
def neighbors_command(
    table: Annotated[Optional[str], typer.Option("--table", help="Feature table, e.g. audio.clap.v1.")] = None,
    space: Annotated[Optional[str], typer.Option("--space", help="ENCODER:VERSION, e.g. clap:v1 (one table).")] = None,
    segment: Annotated[
        Optional[list[str]], typer.Option("--segment", help="Query by this segment's stored vector; repeatable.")
    ] = None,
    segments_file: Annotated[
        Optional[Path], typer.Option("--segments-file", help="Query by each segment id in this file (one per line).")
    ] = None,
    midi: Annotated[Optional[list[Path]], typer.Option("--midi", help="Query by a .mid file; repeatable.")] = None,
    audio: Annotated[Optional[list[Path]], typer.Option("--audio", help="Query by an audio file; repeatable.")] = None,
    text: Annotated[Optional[list[str]], typer.Option("--text", help="Query by text (lyrics/concept); repeatable.")] = None,
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
    """Nearest segments to segments, MIDI/audio files or texts, with colour/song/SQL prefilters.

    Several queries in one call share one search session (table, index and filter opened once).
    Examples: chromatic neighbors --space clap:v1 --segment red-song0-seg1 --color Green -k 5;
    chromatic neighbors --table audio.clap.v1 --segments-file ids.txt --json;
    chromatic neighbors --table midi.midistats.v1 --midi riff.mid --where "bpm > 100" --json
    """
    from encoders.query import NeighborQuery, find_neighbors, read_segment_ids

    segments = tuple(segment or ()) + (read_segment_ids(segments_file) if segments_file else ())
    request = NeighborQuery(
        table=table, space=space, segments=segments, midi_paths=tuple(midi or ()), audio_paths=tuple(audio or ()),
        texts=tuple(text or ()), k=k, colors=tuple(color or ()), songs=tuple(song or ()), where=where,
        include_self=include_self, exact=exact,
    )
    render.print_neighbors(find_neighbors(open_store(store, create=False), request), as_json=json_out)


@app.command("index")
@friendly_errors
def index_command(
    table: Annotated[str, typer.Argument(help="Feature table to index, e.g. audio.clap.v1.")],
    min_rows: Annotated[
        Optional[int], typer.Option(min=0, help="Fewer present vectors than this stay exact (no ANN index).")
    ] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Build the cosine ANN index (large unit-norm tables) and scalar indexes for the search filters.

    Tables of raw statistics (spectral, midistats) get no ANN index: they are searched exactly in standardised space.

    Example: chromatic index audio.clap.v1
    """
    from featurestore.search import IndexSettings, build_index

    summary = build_index(open_store(store, create=False), table, IndexSettings(**given(min_rows=min_rows)))
    render.print_index(table, summary, as_json=json_out)


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
    render.print_inspect(report, as_json=json_out)


@app.command("explore")
@friendly_errors
def explore_command(
    host: Annotated[str, typer.Option(help="Interface to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8765,
    points: Annotated[int, typer.Option(min=2, max=20_000, help="Default number of points sampled for a map.")] = 3000,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Default number of neighbours listed.")] = 10,
    store: StoreOpt = None,
):
    """A local web app: maps of feature tables, click a segment to hear it, see its roll and neighbours; model runs.

    Example: chromatic explore (then open the printed http://127.0.0.1:8765 address; Ctrl-C stops it)
    """
    from explorer.app import ExplorerSettings, create_app
    from explorer.server import serve

    settings = ExplorerSettings(host=host, port=port, map_points=points, k=k)
    app_ = create_app(open_store(store, create=False), settings)
    serve(app_, host, port, on_ready=lambda url: render.print_explorer_url(url, host))


# == demo =======================================================================

@app.command("demo")
@friendly_errors
def demo_command(
    songs: Annotated[Optional[int], typer.Option(min=8, help="Songs in the synthetic corpus.")] = None,
    seed: Annotated[Optional[int], typer.Option(min=0, help="Corpus, split and training seed.")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Maximum training epochs per model.")] = None,
    target: Annotated[Optional[str], typer.Option(help="Colour the candidates are scored against.")] = None,
    store: StoreOpt = None,
):
    """The main job end to end on a synthetic corpus, offline: synth, ingest, encode, train, score, neighbours.

    Re-running resumes: ingest changes nothing, encoders encode nothing new, models train afresh.
    """
    from demo import DemoConfig, run_demo

    handle = open_store(store)
    config = DemoConfig(**given(songs=songs, seed=seed, epochs=epochs, target=target))
    render.print_demo(handle.uri, run_demo(handle, config, encode_progress=render.encode_progress))


if __name__ == "__main__":
    app()
