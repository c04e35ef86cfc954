"""The explorer's HTTP API, served by uvicorn on 127.0.0.1 (port 0) over a tiny store with two runs."""

from __future__ import annotations

import importlib.util
import io
import json
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pyarrow as pa
import pytest
import soundfile

from explorer.app import create_app
from explorer.mapdata import MapQuery, map_points
from explorer.server import running_server
from featurestore.sample import sample_vectors
from featurestore.schemas import MEDIA, SEGMENTS
from featurestore.search import neighbors
from featurestore.taxonomy import COLORS
from tinydata import EXPLORER_INPUTS, TINY_COLORS

TABLE = "audio.fake.v1"


@pytest.fixture(scope="module")
def served(explorer_store):
    store, runs = explorer_store
    with running_server(create_app(store)) as url:
        yield store, runs, url


def get(url: str, path: str, **params) -> tuple[int, bytes, str]:
    query = urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(f"{url}{path}{'?' + query if query else ''}", timeout=60) as response:
            return response.status, response.read(), response.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("content-type", "")


def get_json(url: str, path: str, expect: int = 200, **params):
    status, body, kind = get(url, path, **params)
    assert status == expect, body[:300]
    assert kind.startswith("application/json")
    return json.loads(body)


def segments_by_id(store) -> dict[str, dict]:
    return {row["segment_id"]: row for row in store.read(SEGMENTS).to_pylist()}


def test_page_and_plotly_are_served_by_the_app_itself(served):
    _, _, url = served
    status, page, kind = get(url, "/")
    assert status == 200 and kind.startswith("text/html")
    assert b'src="/plotly.min.js"' in page and b"http" not in page
    status, bundle, kind = get(url, "/plotly.min.js")
    assert status == 200 and "javascript" in kind and len(bundle) > 1_000_000
    status, script, _ = get(url, "/static/explorer.js")
    assert status == 200 and b"plotly_click" in script


def test_tables_lists_feature_tables_colours_and_songs(served):
    store, _, url = served
    data = get_json(url, "/api/tables")
    assert {t["table"] for t in data["tables"]} == {"audio.fake.v1", "lyrics.fake.v1"}
    assert {t["spec"] for t in data["tables"]} == {"fake:v1"}
    assert data["colors"] == [c for c in COLORS if c in TINY_COLORS]  # taxonomy order
    assert data["defaults"] == {"points": 3000, "k": 10}
    assert len(data["songs"]) == len(set(segments_by_id(store)[s]["song_id"] for s in segments_by_id(store)))


def test_map_samples_present_vectors_with_their_metadata(served):
    store, _, url = served
    meta = segments_by_id(store)
    data = get_json(url, "/api/map", table=TABLE)
    present = {r["segment_id"] for r in store.read(TABLE, ["segment_id", "present"]).to_pylist() if r["present"]}
    assert data["eligible"] == data["shown"] == len(present) == len(data["points"])
    assert {p["segment_id"] for p in data["points"]} == present
    for point in data["points"]:
        assert point["color"] == meta[point["segment_id"]]["color"] and point["has_audio"]
        assert np.isfinite([point["x"], point["y"]]).all()
    assert len(data["explained_variance"]) == 2 and data["explained_variance"][0] >= data["explained_variance"][1]
    assert {p["color"] for p in data["points"]} == set(TINY_COLORS)


def test_map_sample_is_seeded_and_bounded(served):
    store, _, url = served
    first = get_json(url, "/api/map", table=TABLE, points=10, seed=3)
    again = get_json(url, "/api/map", table=TABLE, points=10, seed=3)
    other = get_json(url, "/api/map", table=TABLE, points=10, seed=4)
    ids = [p["segment_id"] for p in first["points"]]
    assert first["shown"] == 10 and first["eligible"] > 10
    assert ids == [p["segment_id"] for p in again["points"]]
    assert set(ids) != {p["segment_id"] for p in other["points"]}
    # The sample reads only the sampled rows, and returns them aligned with their vectors.
    sample = sample_vectors(store.dataset(TABLE), 10, seed=3)
    stored = {r["segment_id"]: r["vector"] for r in store.read(TABLE, ["segment_id", "vector"]).to_pylist()}
    for sid, row in zip(sample.segment_ids, sample.matrix):
        np.testing.assert_allclose(row, stored[sid], rtol=1e-6)


def test_map_filters_by_colour_song_and_modality(served):
    store, _, url = served
    meta = segments_by_id(store)
    greens = get_json(url, "/api/map", table=TABLE, color=["green", "Red"])
    assert {p["color"] for p in greens["points"]} == {"Green", "Red"}
    song = "blue-song1"
    one_song = get_json(url, "/api/map", table=TABLE, song=[song])
    assert {p["song_id"] for p in one_song["points"]} == {song}
    with_midi = get_json(url, "/api/map", table=TABLE, require=["midi", "lyrics"])
    expected = {s for s, row in meta.items() if row["has_midi"] and row["has_lyrics"] and row["has_audio"]}
    assert {p["segment_id"] for p in with_midi["points"]} == expected


def test_map_methods_and_bad_requests(served, explorer_store):
    store, _, url = served
    tsne = get_json(url, "/api/map", table=TABLE, method="tsne")
    assert tsne["shown"] > 2 and tsne["explained_variance"] is None
    assert "unknown map method" in get_json(url, "/api/map", 400, table=TABLE, method="mds")["detail"]
    if importlib.util.find_spec("umap") is None:  # an optional extra: the error says how to get it
        assert "pip install umap-learn" in get_json(url, "/api/map", 400, table=TABLE, method="umap")["detail"]
    else:
        assert get_json(url, "/api/map", table=TABLE, method="umap")["shown"] == tsne["shown"]
    assert "unknown modality filter" in get_json(url, "/api/map", 400, table=TABLE, require=["video"])["detail"]
    assert "segments" in get_json(url, "/api/map", 400, table="segments")["detail"]
    missing = get_json(url, "/api/map", 404, table="audio.nope.v1")
    assert "audio.nope.v1" in missing["detail"]
    # The map is the library's: the endpoint adds nothing to it.
    assert get_json(url, "/api/map", table=TABLE, points=12) == map_points(store, MapQuery(TABLE, points=12))


def test_neighbors_are_the_stores_search_with_the_same_filters(served):
    store, _, url = served
    meta = segments_by_id(store)
    query = next(s for s, row in sorted(meta.items()) if row["has_audio"] and row["color"] == "Orange")
    data = get_json(url, "/api/neighbors", table=TABLE, segment=query, k=5)
    expected = neighbors(store, TABLE, query, k=5)
    assert [n["segment_id"] for n in data["neighbors"]] == [n.segment_id for n in expected]
    assert query not in [n["segment_id"] for n in data["neighbors"]]
    assert [n["rank"] for n in data["neighbors"]] == [1, 2, 3, 4, 5]
    assert all(n["has_audio"] == meta[n["segment_id"]]["has_audio"] for n in data["neighbors"])
    filtered = get_json(url, "/api/neighbors", table=TABLE, segment=query, k=50, color=["Violet"], require=["midi"])
    assert filtered["neighbors"] and all(n["color"] == "Violet" and n["has_midi"] for n in filtered["neighbors"])
    bad = get_json(url, "/api/neighbors", 400, table=TABLE, segment="no-such-segment")
    assert "unknown segment" in bad["detail"]


def test_audio_is_a_playable_wav_of_the_stored_waveform(served):
    store, _, url = served
    media = {r["segment_id"]: r for r in store.read(MEDIA).to_pylist()}
    with_audio = next(s for s, row in sorted(media.items()) if row["audio"] is not None)
    status, body, kind = get(url, f"/api/audio/{with_audio}")
    assert status == 200 and kind == "audio/wav" and body[:4] == b"RIFF" and body[8:12] == b"WAVE"
    wave, rate = soundfile.read(io.BytesIO(body), dtype="float32")
    assert rate == media[with_audio]["sample_rate"]
    np.testing.assert_allclose(wave, media[with_audio]["audio"], atol=1.0 / 2**14)
    without = next(s for s, row in sorted(media.items()) if row["audio"] is None)
    assert "has no audio" in get_json(url, f"/api/audio/{without}", 404)["detail"]
    assert "unknown segment" in get_json(url, "/api/audio/nope", 400)["detail"]


def test_roll_and_segment_metadata(served):
    store, _, url = served
    meta = segments_by_id(store)
    with_midi = next(s for s, row in sorted(meta.items()) if row["has_midi"])
    roll = get_json(url, f"/api/roll/{with_midi}")
    z = np.asarray(roll["z"])
    assert z.shape == (len(roll["pitches"]), len(roll["seconds"])) and roll["active_cells"] == int((z > 0).sum()) > 0
    # tinydata's notes: 8 half-beat notes at 120 bpm, pitches base + {0, 4, 8}.
    assert len({p for p, row in zip(roll["pitches"], z) if row.any()}) == 3
    assert roll["seconds"][-1] == pytest.approx(1.9)
    without = next(s for s, row in sorted(meta.items()) if not row["has_midi"])
    assert "has no MIDI" in get_json(url, f"/api/roll/{without}", 404)["detail"]
    assert get_json(url, f"/api/segments/{with_midi}")["song_id"] == meta[with_midi]["song_id"]
    assert get_json(url, "/api/segments/nope", 404)["detail"] == "unknown segment 'nope'"


def test_runs_list_view_and_side_by_side(served):
    store, runs, url = served
    listed = get_json(url, "/api/runs")
    assert [r["run_id"] for r in listed] == runs
    assert [r["inputs"] for r in listed] == list(EXPLORER_INPUTS)
    assert listed[0]["group"] == listed[1]["group"]  # one training config, as the rows of one `compare` have
    view = get_json(url, f"/api/runs/{runs[1]}")
    manifest_dir = view["run_dir"]
    metrics = json.loads(open(f"{manifest_dir}/metrics.json").read())
    assert view["metrics"] == metrics and view["inputs"] == EXPLORER_INPUTS[1]
    color = np.asarray(view["confusion"]["color"]["matrix"])
    assert color.sum() == metrics["overall"]["n"]
    assert np.trace(color) / color.sum() == pytest.approx(metrics["overall"]["color_acc"])
    assert view["wrong_total"] == color.sum() - np.trace(color) == len(view["wrong"])
    assert all(w["predicted"] != w["color"] for w in view["wrong"])
    meta = segments_by_id(store)
    assert all(w["has_audio"] == meta[w["segment_id"]]["has_audio"] for w in view["wrong"])
    assert {"curves", "color_confusion", "temporal_confusion"} <= set(view["figures"])
    assert len(view["figures"]["curves"]["data"][0]["x"]) == len(view["history"])
    side = get_json(url, "/api/compare", run=runs)
    assert [r["run_id"] for r in side] == runs and [r["inputs"] for r in side] == list(EXPLORER_INPUTS)
    assert side[1]["confusion"] == view["confusion"]["color"]
    assert side[1]["figure"]["data"][0]["type"] == "heatmap"
    assert "nope" in get_json(url, "/api/runs/nope", 400)["detail"]
    assert "no runs to compare" in get_json(url, "/api/compare", 400)["detail"]


def test_map_of_a_float16_tensor_table_goes_through_the_projection(tiny_store):
    from featurestore.diagnostics import PROJECT_ABOVE_DIM
    from featurestore.schemas import feature_schema

    shape = (64, 48)
    assert np.prod(shape) > PROJECT_ABOVE_DIM
    segments = tiny_store.read(SEGMENTS, ["segment_id", "color"]).to_pylist()
    rng = np.random.default_rng(0)
    centres = {color: rng.random(np.prod(shape)) for color in TINY_COLORS}
    vectors = [(centres[s["color"]] + 0.1 * rng.random(np.prod(shape))).astype(np.float16) for s in segments]
    schema = feature_schema(shape, "float16")
    tiny_store.ensure_table("midi.roll.v1", schema)
    tiny_store.upsert("midi.roll.v1", pa.Table.from_pylist(
        [dict(segment_id=s["segment_id"], vector=v.tolist(), present=True, status=None, encoded_at=None)
         for s, v in zip(segments, vectors)], schema=schema))
    data = map_points(tiny_store, MapQuery("midi.roll.v1", points=30))
    assert data["shown"] == 30 and data["eligible"] == len(segments)
    xy = np.array([[p["x"], p["y"]] for p in data["points"]])
    assert np.isfinite(xy).all() and xy.std(axis=0).min() > 0
