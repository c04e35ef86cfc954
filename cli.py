"""`chromatic`: a thin typer app. Parse, build a config, call one library function, hand the result to render.

Only this module imports typer; how results look lives in render.py. Library
errors (ChromaticError) become a red message and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Optional

import typer

import render
from featurestore.errors import ChromaticError

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
DeviceOpt = Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")]
ModalityDropoutOpt = Annotated[
    float, typer.Option(min=0.0, max=0.99, help="Per-sample chance of hiding each present input in training.")
]
FoldsOpt = Annotated[int, typer.Option(
    min=1, help="1: one held-out split (--val-fraction); K > 1: song-grouped K-fold, one run per fold, "
    "metrics as mean ± sd over folds.")]
SoloDropoutOpt = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Per-sample chance of keeping only one present input in training.")
]


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


def open_store(store: str | None, create: bool = True):
    from featurestore.store import Store

    return Store.open(store, create=create)


# == data: synth, ingest, info ==================================================

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
    from featurestore.synth import SynthConfig, write_corpus

    config = SynthConfig(songs=songs, seed=seed, segments_per_song=(min_segments, max_segments),
                         min_seconds=min_seconds, max_seconds=max_seconds)
    with render.counting_progress("synth songs", total=songs) as progress:
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
    batch_mb: Annotated[float, typer.Option(min=0.01, help="Media megabytes per batch; bounds memory.")] = 8.0,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Ingest segments (labels, text, audio, MIDI) into the store; re-running changes nothing.

    Examples: chromatic ingest data/training_segments_media.parquet;
    chromatic ingest my_songs/ --manifest my_songs/segments.csv
    """
    from featurestore.ingest import IngestConfig, ingest_paths

    config = IngestConfig(batch_bytes=int(batch_mb * 2**20), manifest=manifest, source=source)
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
    batch_size: Annotated[int, typer.Option(min=1, help="Items per model batch.")] = 32,
    device: DeviceOpt = "cpu",
    limit: Annotated[Optional[int], typer.Option(min=0, help="Encode at most N pending segments per table.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad input instead of recording it.")] = False,
    workers: Annotated[
        Optional[int], typer.Option(min=0, help="Spawned processes for decode/resample (0: inline; default: 0 on cpu, CPUs-1 with a GPU).")
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

    config = EncodeConfig(
        encoder=encoder, version=version, params=parse_param_pairs(param or []), model=model,
        modalities=tuple(modality or ()), batch_size=batch_size, device=device, limit=limit, strict=strict,
        workers=workers,
    )
    summary = run_encode(open_store(store, create=False), config)  # progress goes to stderr
    render.print_encode_result(summary, as_json=json_out)


@app.command("versions")
@friendly_errors
def versions_command(store: StoreOpt = None, json_out: JsonOpt = False):
    """Every feature table: encoder config, rows, state and coverage overall and per colour."""
    from featurestore.coverage import list_versions

    versions = list_versions(open_store(store, create=False))
    render.print_versions(versions, as_json=json_out)

# == fusion: train, eval, compare ===============================================

_SPEC_HELP = "ENCODER:VERSION of the {} feature table, e.g. {}; leave out to train without it."


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
    folds: FoldsOpt = 1,
    modality_dropout: ModalityDropoutOpt = 0.15,
    solo_dropout: SoloDropoutOpt = 0.3,
    augment: Annotated[bool, typer.Option(
        help="Augment piano rolls while training (transpose, time shift, velocity jitter).")] = False,
    preset: Annotated[Optional[str], typer.Option(
        help="A named recipe that sets the inputs (and its training settings): 'scorer' trains the model "
        "to score MIDI candidates with.")] = None,
    device: DeviceOpt = "cpu",
    threads: Annotated[
        int, typer.Option(min=0, help="Torch CPU threads (0: one per core; 1 is faster on a busy shared CPU).")
    ] = 0,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
):
    """Train a fusion model on stored feature tables; writes a run (weights, manifest, metrics, report).

    Example: chromatic train --audio clap:v1 --midi pianoroll:v2 --lyrics minilm:v1 --concept minilm:v1

    The model to score MIDI candidates with: chromatic train --preset scorer (after
    chromatic encode --encoder midistats --version v2 --param features=invariant).
    """
    from fusion.train import TrainConfig, train_folds

    inputs = {k: v for k, v in {"audio": audio, "midi": midi, "lyrics": lyrics, "concept": concept}.items() if v}
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                         val_fraction=val_fraction, folds=folds, seed=seed, fusion=fusion, device=device,
                         threads=threads, modality_dropout=modality_dropout, solo_dropout=solo_dropout,
                         augment=augment)
    if preset is not None:
        inputs, config = _apply_preset(preset, inputs, config)
    results = train_folds(open_store(store, create=False), inputs, config,
                          progress=lambda row: render.print_epoch(row, epochs))
    if len(results) == 1:
        render.print_train_result(results[0], as_json=json_out)
    else:
        render.print_fold_results(results, as_json=json_out)


def _apply_preset(name: str, inputs: dict, config):
    """A preset's inputs and settings; refuses --audio/--midi/... beside it (the preset decides the inputs)."""
    from dataclasses import replace

    from featurestore.errors import ModelError
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
    folds: FoldsOpt = 1,
    modality_dropout: ModalityDropoutOpt = 0.15,
    solo_dropout: SoloDropoutOpt = 0.3,
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
    given = {"epochs": epochs, "seed": seed}
    config = TrainConfig(**{k: v for k, v in given.items() if v is not None}, threads=1, folds=folds,
                         modality_dropout=modality_dropout, solo_dropout=solo_dropout)
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
                                lyrics=lyrics, concept=concept, store_uri=store)
    results = score_files(request)
    render.print_scores(results, target, as_json=json_out)


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
    render.print_neighbors(resolved, found, as_json=json_out)


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
    """Build the cosine ANN index (large unit-norm tables) and scalar indexes for the search filters.

    Tables of raw statistics (spectral, midistats) get no ANN index: they are searched exactly in standardised space.

    Example: chromatic index audio.clap.v1
    """
    from featurestore.search import IndexSettings, build_index

    summary = build_index(open_store(store, create=False), table, IndexSettings(min_rows=min_rows))
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


# == demo =======================================================================

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
    config = DemoConfig(songs=songs, seed=seed, epochs=epochs, target=target)
    render.print_demo(handle.uri, run_demo(handle, config, show_progress=True))


if __name__ == "__main__":
    app()
