"""The explorer's HTTP API and page (FastAPI). Every handler is a thin call into the library.

GET /                       the page (static/index.html)
GET /plotly.min.js          plotly.js from the installed plotly package (no CDN)
GET /api/tables             feature tables, with the colours and songs to filter by
GET /api/map                sampled 2-D map of a table (mapdata.MapQuery's fields)
GET /api/neighbors          k nearest segments to one segment, same filters as the map
GET /api/segments/{id}      one segment's metadata
GET /api/audio/{id}         its audio as WAV
GET /api/roll/{id}          its MIDI as a piano roll
GET /api/runs               model runs with inputs and metrics
GET /api/runs/{run_id}      one run: metrics, curves, confusion matrices, wrong rows
GET /api/compare?run=a&run=b  runs side by side
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from explorer.figures import confusion_figure, plotly_js, run_figures
from explorer.mapdata import DEFAULT_POINTS, MapQuery, availability_where, map_points, segment_metadata
from explorer.media import MediaMissing, segment_roll, segment_wav
from featurestore.errors import ChromaticError, TableNotFoundError
from featurestore.registry import list_encoder_records
from featurestore.schemas import SEGMENTS, SYSTEM_TABLES
from featurestore.search import SearchFilter, Searcher
from featurestore.store import Store
from featurestore.taxonomy import COLORS
from fusion.run_view import compare_views, load_run_view, run_summaries

STATIC = files("explorer") / "static"
ListParam = Annotated[list[str], Query()]


@dataclass(frozen=True)
class ExplorerSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    map_points: int = DEFAULT_POINTS
    k: int = 10


def create_app(store: Store, settings: ExplorerSettings = ExplorerSettings()) -> FastAPI:
    app = FastAPI(title="chromatic explorer", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.settings = settings
    _add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    _add_page_routes(app)
    _add_space_routes(app, store, settings)
    _add_run_routes(app, store)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ChromaticError)
    async def chromatic_error(_request, exc: ChromaticError):
        status = 404 if isinstance(exc, (MediaMissing, TableNotFoundError)) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)


def _add_page_routes(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse)
    def page():
        return (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/plotly.min.js")
    def plotly_bundle():
        return Response(plotly_js(), media_type="application/javascript",
                        headers={"Cache-Control": "max-age=86400"})


class SearchSessions:
    """One search session (`Searcher`) per feature table for the server's life, moved to the latest
    table versions before each query; queries take turns (a session is not shared between threads)."""

    def __init__(self, store: Store):
        self.store = store
        self._sessions: dict[str, Searcher] = {}
        self._lock = threading.Lock()

    def search(self, table: str, segment: str, k: int, search_filter: SearchFilter):
        with self._lock:
            searcher = self._sessions.get(table)
            if searcher is None:
                searcher = self._sessions[table] = Searcher(self.store, table)
            else:
                searcher.refresh()
            return searcher.search(segment, k, search_filter)


def _add_space_routes(app: FastAPI, store: Store, settings: ExplorerSettings) -> None:
    sessions = SearchSessions(store)

    @app.get("/api/tables")
    def tables():
        return {**feature_tables(store), "defaults": {"points": settings.map_points, "k": settings.k}}

    @app.get("/api/map")
    def map_data(table: str, color: ListParam = (), song: ListParam = (), require: ListParam = (),
                 method: str = "pca", points: int = settings.map_points, seed: int = 0):
        query = MapQuery(table, tuple(color), tuple(song), tuple(require), method, points, seed)
        return plain_json(map_points(store, query))

    @app.get("/api/neighbors")
    def neighbor_list(table: str, segment: str, k: int = settings.k, color: ListParam = (),
                      song: ListParam = (), require: ListParam = ()):
        MapQuery(table, require=tuple(require))  # the same checks as the map's filters
        search_filter = SearchFilter(tuple(color), tuple(song), availability_where(tuple(require)))
        found = sessions.search(table, segment, k, search_filter)
        meta = segment_metadata(store, [n.segment_id for n in found])
        return {"table": table, "segment": segment,
                "neighbors": [{**meta.get(n.segment_id, {}), **n.to_dict()} for n in found]}

    @app.get("/api/segments/{segment_id}")
    def segment(segment_id: str):
        found = segment_metadata(store, [segment_id])
        if segment_id not in found:
            return JSONResponse({"detail": f"unknown segment {segment_id!r}"}, status_code=404)
        return found[segment_id]

    @app.get("/api/audio/{segment_id}")
    def audio(segment_id: str):
        return Response(segment_wav(store, segment_id), media_type="audio/wav")

    @app.get("/api/roll/{segment_id}")
    def roll(segment_id: str):
        return segment_roll(store, segment_id)


def _add_run_routes(app: FastAPI, store: Store) -> None:
    @app.get("/api/runs")
    def runs():
        return run_summaries(store)

    @app.get("/api/runs/{run_id}")
    def run(run_id: str):
        view = load_run_view(store, run_id).to_dict()
        return plain_json({**view, "figures": run_figures(view)})

    @app.get("/api/compare")
    def compare(run: ListParam = ()):
        views = compare_views(store, list(run))
        return plain_json([{**v, "figure": confusion_figure(v["confusion"]["labels"], v["confusion"]["matrix"],
                                                            f"colour, {v['run_id']}")} for v in views])


def plain_json(payload: dict) -> Response:
    """Already JSON-ready data, serialised directly: FastAPI's encoder walks every value (3000 map points: ~1 s)."""
    return Response(json.dumps(payload, separators=(",", ":")), media_type="application/json")


def feature_tables(store: Store) -> dict:
    """Feature tables (registry details where registered), and the colours and songs in `segments`."""
    records = {r.table_name: r for r in list_encoder_records(store)}
    names = [n for n in store.table_names() if n not in SYSTEM_TABLES]
    tables = [{"table": n, "spec": records[n].spec if n in records else None,
               "modality": n.split(".")[0], "rows": store.count(n)} for n in names]
    labels = store.read(SEGMENTS, ["color", "song_id"]) if store.has_table(SEGMENTS) else None
    present = set(labels.column("color").to_pylist()) if labels is not None else set()
    colors = [c for c in COLORS if c in present]
    songs = sorted(set(labels.column("song_id").to_pylist())) if labels is not None else []
    return {"tables": tables, "colors": colors, "songs": songs}
