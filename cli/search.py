"""Search and sharing commands: neighbors, index, inspect, explore, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

import render
from cli.app import JsonOpt, StoreOpt, app, friendly_errors, given, open_store


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
