"""Scoring commands: export, score, embed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

import render
from cli.app import JsonOpt, RUN_HELP, StoreOpt, app, friendly_errors, given, open_store, store_options
from render import err_console


@app.command("export")
@friendly_errors
def export_command(
    run: Annotated[str, typer.Argument(help=RUN_HELP)],
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
    run: Annotated[str, typer.Argument(help=RUN_HELP)],
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
