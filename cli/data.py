"""Data commands: synth, ingest, info, optimize, doctor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

import render
from cli.app import JsonOpt, StoreOpt, app, friendly_errors, given, open_store


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
