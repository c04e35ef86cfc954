"""Fusion commands: train, eval, frame, report, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

import render
from cli.app import (AudioSpecOpt, ConceptSpecOpt, DeviceOpt, FoldsOpt, JsonOpt, LyricsSpecOpt, MidiSpecOpt,
                     ModalityDropoutOpt, SoloDropoutOpt, StoreOpt, app, friendly_errors, given, open_store)

TensorEncoderOpt = Annotated[Optional[str], typer.Option(
    help="How a piano roll is read: cnn2d (an image CNN), conv1d (pitches as channels of a temporal conv) "
    "or chroma (pitch class x register, then a temporal conv); see fusion/roll_encoders.py.")]


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
    tensor_encoder: TensorEncoderOpt = None,
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
    chromatic encode --encoder midistats --version v2 --param features=parts).
    """
    from fusion.train import TrainConfig, train_folds

    inputs = _given_inputs(audio, midi, lyrics, concept)
    config = TrainConfig(**given(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                                 val_fraction=val_fraction, folds=folds, seed=seed, fusion=fusion, device=device,
                                 threads=threads, modality_dropout=modality_dropout, solo_dropout=solo_dropout,
                                 tensor_encoder=tensor_encoder))
    handle = open_store(store, create=False)
    if preset is not None:
        inputs, config = _apply_preset(handle, preset, inputs, config)
    results = train_folds(handle, inputs, config,
                          progress=lambda row: render.print_epoch(row, config.epochs))
    if len(results) == 1:
        render.print_train_result(results[0], as_json=json_out)
    else:
        render.print_fold_results(results, as_json=json_out)


def _apply_preset(store, name: str, inputs: dict, config):
    """A preset's inputs and settings; refuses --audio/--midi/... beside it (the preset decides the inputs), and
    tables that are missing or hold other features under the preset's version label."""
    from dataclasses import replace

    from fusion.errors import ModelError
    from fusion.presets import check_preset_tables, preset

    if inputs:
        raise ModelError(f"--preset {name} sets the inputs itself; leave out {', '.join('--' + k for k in inputs)}")
    chosen = preset(name)
    check_preset_tables(store, name)
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


def _given_inputs(audio: list[str] | None, midi: list[str] | None, lyrics: list[str] | None,
                  concept: list[str] | None) -> dict[str, str]:
    """{input name: spec}; a repeated option gives several inputs of its modality (featurestore.input_specs)."""
    from featurestore.input_specs import name_inputs

    inputs: dict[str, str] = {}
    for modality, specs in {"audio": audio, "midi": midi, "lyrics": lyrics, "concept": concept}.items():
        if specs:
            inputs.update(name_inputs(modality, list(specs)))
    return inputs


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


_VERSIONS_HELP = ("Comma list of ENCODER:VERSION to try for {}; 'none' = leave it out. Repeat the option for "
                  "several inputs of it in one model, e.g. --midi midistats:v1 --midi pianoroll:v1,none.")


def _version_list(value: str | None) -> list[str | None] | None:
    """'clap:v1,none' -> ['clap:v1', None]; None when the option was not given."""
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    return [None if item.lower() == "none" else item for item in items]


def _version_grid(options: dict[str, list[str]]) -> dict[str, list[str | None]]:
    """{input name: versions to try}; a repeated option gives one input per list, each named after the first
    version it lists (as `train` names repeated options)."""
    from featurestore.input_specs import name_inputs
    from fusion.errors import ModelError

    grid: dict[str, list[str | None]] = {}
    for modality, values in options.items():
        lists = [_version_list(value) for value in values]
        firsts = [next((v for v in versions if v is not None), None) for versions in lists]
        if len(lists) > 1 and None in firsts:
            raise ModelError(f"each repeated --{modality} needs at least one ENCODER:VERSION besides 'none'")
        grid.update(zip(name_inputs(modality, firsts) if len(lists) > 1 else [modality], lists))
    return grid


@app.command("compare")
@friendly_errors
def compare_command(
    audio: Annotated[Optional[list[str]], typer.Option(help=_VERSIONS_HELP.format("audio"))] = None,
    midi: Annotated[Optional[list[str]], typer.Option(help=_VERSIONS_HELP.format("MIDI"))] = None,
    lyrics: Annotated[Optional[list[str]], typer.Option(help=_VERSIONS_HELP.format("lyrics"))] = None,
    concept: Annotated[Optional[list[str]], typer.Option(help=_VERSIONS_HELP.format("concept"))] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Epochs per combination.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the song split and training.")] = None,
    folds: FoldsOpt = None,
    modality_dropout: ModalityDropoutOpt = None,
    solo_dropout: SoloDropoutOpt = None,
    tensor_encoder: TensorEncoderOpt = None,
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
    grid = _version_grid({name: values for name, values in options.items() if values})
    config = TrainConfig(**given(epochs=epochs, seed=seed, folds=folds, modality_dropout=modality_dropout,
                                 solo_dropout=solo_dropout, tensor_encoder=tensor_encoder), threads=1)
    progress = render.CompareProgress(config.epochs * config.folds)
    with progress.bar:
        rows = compare(open_store(store, create=False), grid, config, progress=progress)
    render.print_compare(rows, config.seed, as_json=json_out)
