"""Neighbour search, ANN index, query encoding and encoder diagnostics."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest
from tinydata import TINY_COLORS

from encoders.base import EncoderInput
from encoders.query import NeighborQuery, encode_query, find_neighbors
from encoders.registry import build_encoder
from featurestore import Store, TableNotFoundError
from featurestore.diagnostics import inspect_table
from featurestore.errors import SearchError
from featurestore.registry import EncoderRecord, put_encoder_record
from featurestore.schemas import MEDIA, SEGMENTS, SEGMENTS_SCHEMA, feature_schema
from featurestore.search import IndexSettings, SearchSettings, build_index, neighbors, resolve_space
from featurestore.space import table_space

DIM = 8
TABLE = "audio.toy.v1"


def write_features(store: Store, name: str, vectors: dict, status: dict | None = None) -> None:
    """Feature rows for {segment_id: vector or None}; None rows are stored absent (null vector)."""
    dim = len(next(v for v in vectors.values() if v is not None))
    store.ensure_table(name, feature_schema((dim,)))
    status = status or {}
    ids = list(vectors)
    store.upsert(name, pa.table({
        "segment_id": ids,
        "vector": pa.array([None if vectors[s] is None else np.asarray(vectors[s], np.float32).tolist() for s in ids],
                           type=pa.list_(pa.float32(), dim)),
        "present": [vectors[s] is not None for s in ids],
        "status": [None if vectors[s] is not None else status.get(s, "absent") for s in ids],
        "encoded_at": pa.array([datetime.now(timezone.utc)] * len(ids), type=pa.timestamp("us", tz="UTC")),
    }))


def register(store: Store, name: str, encoder, shape) -> None:
    modality, _, version = name.split(".")
    put_encoder_record(store, EncoderRecord(
        name, modality, encoder.name, version, encoder.kind, tuple(shape), encoder.dtype, encoder.config.to_json(),
        encoder.model_id, encoder.weights_fingerprint(), encoder.fingerprint(), str(encoder.code_version),
        state="complete",
    ))


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def segment_meta(store: Store) -> dict[str, dict]:
    return {row["segment_id"]: row for row in store.read(SEGMENTS).to_pylist()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny store shared by the tests that only add their own tables to it."""
    from tinydata import build_tiny_store

    return build_tiny_store(tmp_path_factory.mktemp("search") / "store")


@pytest.fixture(scope="module")
def toy(tiny):
    """Every non-Green vector hugs e0; Green ones point away, so a postfilter on e0's top-k finds no Green.

    Unit-norm, like a learned embedding: the table is searched in plain cosine.
    """
    tiny_store = tiny
    rng = np.random.default_rng(0)
    meta = segment_meta(tiny_store)
    vectors, absent = {}, set()
    for i, (sid, row) in enumerate(sorted(meta.items())):
        base = np.eye(DIM)[1] if row["color"] == "Green" else np.eye(DIM)[0]
        vectors[sid] = unit(base + 0.05 * rng.standard_normal(DIM))
        if i % 7 == 3:  # every seventh segment has no vector
            vectors[sid], absent = None, absent | {sid}
    write_features(tiny_store, TABLE, vectors)
    return tiny_store, meta, absent


def test_color_prefilter_returns_k_of_that_colour_even_when_nearest_are_others(toy):
    store, meta, absent = toy
    query = np.eye(DIM)[0]
    unfiltered = neighbors(store, TABLE, query, k=5)
    assert all(n.color != "Green" for n in unfiltered)  # a postfilter over these would return nothing
    green = neighbors(store, TABLE, query, k=3, colors=["green"])
    assert len(green) == 3 and {n.color for n in green} == {"Green"}
    assert [n.rank for n in green] == [1, 2, 3]
    assert all(a.distance <= b.distance for a, b in zip(green, green[1:]))
    present_green = [s for s, m in meta.items() if m["color"] == "Green" and s not in absent]
    everything = neighbors(store, TABLE, query, k=100, colors=["Green", "Red"])
    assert {n.segment_id for n in everything} >= set(present_green)
    assert {n.color for n in everything} == {"Green", "Red"}


def test_null_vectors_never_come_back(toy):
    store, meta, absent = toy
    found = neighbors(store, TABLE, np.eye(DIM)[0], k=1000)
    ids = {n.segment_id for n in found}
    assert absent and not ids & absent
    assert len(found) == len(meta) - len(absent)


def test_query_segment_excluded_unless_asked(toy):
    store, meta, absent = toy
    sid = next(s for s in sorted(meta) if s not in absent)
    without = neighbors(store, TABLE, sid, k=5)
    assert sid not in {n.segment_id for n in without} and len(without) == 5
    with_self = neighbors(store, TABLE, sid, k=5, include_self=True)
    assert with_self[0].segment_id == sid and with_self[0].distance == pytest.approx(0.0, abs=1e-6)
    assert with_self[0].song_id == meta[sid]["song_id"] and with_self[0].start_s == meta[sid]["start_s"]


def test_where_and_song_filters_apply_to_segment_metadata(toy):
    store, meta, _ = toy
    found = neighbors(store, TABLE, np.eye(DIM)[0], k=50, where="start_s >= 2.0 AND has_audio")
    assert found and all(meta[n.segment_id]["start_s"] >= 2.0 and meta[n.segment_id]["has_audio"] for n in found)
    song = "green-song1"
    by_song = neighbors(store, TABLE, np.eye(DIM)[0], k=50, songs=[song])
    assert by_song and {n.song_id for n in by_song} == {song}
    assert neighbors(store, TABLE, np.eye(DIM)[0], k=5, where="start_s > 1000") == []


def test_bad_inputs_give_typed_errors_listing_choices(toy):
    store, meta, absent = toy
    query = np.eye(DIM)[0]
    with pytest.raises(SearchError, match="Violet"):
        neighbors(store, TABLE, query, colors=["Magenta"])
    with pytest.raises(SearchError, match="has no vector in audio.toy.v1 \\(status: absent\\)"):
        neighbors(store, TABLE, sorted(absent)[0])
    with pytest.raises(SearchError, match="did you mean red-song0-seg"):
        neighbors(store, TABLE, "red-song0-seg9")
    with pytest.raises(SearchError, match="segments columns: segment_id, song_id, color"):
        neighbors(store, TABLE, query, where="loudness > 3")
    with pytest.raises(SearchError, match="known songs: black-song0"):
        neighbors(store, TABLE, query, songs=["no-such-song"])
    with pytest.raises(SearchError, match="holds 8-d vectors"):
        neighbors(store, TABLE, np.ones(3))
    with pytest.raises(TableNotFoundError, match="audio.toy.v1"):
        neighbors(store, "audio.nope.v1", query)
    with pytest.raises(SearchError, match="no cosine ANN index"):
        neighbors(store, TABLE, query, exact=False)


def test_space_resolves_to_one_table_or_lists_candidates(toy):
    store, _, _ = toy
    assert resolve_space(store, space="toy:v1") == TABLE
    for name in ("audio.twice.v1", "lyrics.twice.v1"):
        write_features(store, name, {"red-song0-seg0": np.ones(DIM)})
    with pytest.raises(SearchError, match="audio.twice.v1, lyrics.twice.v1"):
        resolve_space(store, space="twice:v1")
    with pytest.raises(SearchError, match="known spaces: toy:v1"):
        resolve_space(store, space="clap:v9")
    with pytest.raises(SearchError, match="exactly one"):
        resolve_space(store, table=TABLE, space="toy:v1")


@pytest.fixture(scope="module")
def midistats_store(tiny):
    """midi.midistats.v1 written the way the encode job would: real encoder, registry row."""
    tiny_store = tiny
    encoder = build_encoder("midistats")
    media = tiny_store.read(MEDIA, ["segment_id", "midi"]).to_pylist()
    midi = {row["segment_id"]: row["midi"] for row in media}
    items = [EncoderInput(sid, midi=blob) for sid, blob in midi.items() if blob is not None]
    encoded = dict(zip((i.segment_id for i in items), encoder.encode(items, "midi")))
    write_features(tiny_store, "midi.midistats.v1", {sid: encoded.get(sid) for sid in midi})
    register(tiny_store, "midi.midistats.v1", encoder, encoder.shape)
    return tiny_store, midi


def test_query_by_file_equals_query_by_stored_segment(midistats_store, tmp_path):
    store, midi = midistats_store
    sid = next(s for s in sorted(midi) if midi[s] is not None and s.startswith("violet"))
    path = tmp_path / "query.mid"
    path.write_bytes(midi[sid])
    assert table_space(store, "midi.midistats.v1").standardised  # raw statistics: query z-scored like the rows
    result = find_neighbors(store, NeighborQuery(space="midistats:v1", midi_paths=(path,), k=6))
    table, by_file = result.table, result.found[0]
    assert set(result.seconds) == {"open", "encode", "search"} and result.queries == [str(path)]
    by_segment = neighbors(store, table, sid, k=6, include_self=True)
    assert table == "midi.midistats.v1"
    assert [n.segment_id for n in by_file] == [n.segment_id for n in by_segment]
    np.testing.assert_allclose([n.distance for n in by_file], [n.distance for n in by_segment], atol=1e-6)
    assert sid in {n.segment_id for n in by_file if n.distance < 1e-6}
    stored = store.read(table, ["vector"], where=f"segment_id = '{sid}'").column("vector").to_pylist()[0]
    np.testing.assert_allclose(encode_query(store, table, midi=midi[sid]), stored, atol=1e-6)


def test_query_input_must_match_the_table_modality(midistats_store, tmp_path):
    store, _ = midistats_store
    with pytest.raises(SearchError, match="accepts --midi, not --text"):
        find_neighbors(store, NeighborQuery(table="midi.midistats.v1", texts=("a sad song",)))
    spectral = build_encoder("spectral")
    write_features(store, "audio.spectral.v1", {"red-song0-seg0": np.ones(spectral.shape[0])})
    register(store, "audio.spectral.v1", spectral, spectral.shape)
    with pytest.raises(SearchError, match="accepts --audio, not --text"):
        encode_query(store, "audio.spectral.v1", text="hello")
    with pytest.raises(SearchError, match="exactly one kind.*got --segment, --text"):
        find_neighbors(store, NeighborQuery(table="midi.midistats.v1", segments=("x",), texts=("y",)))
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file")
    with pytest.raises(SearchError, match="undecodable MIDI"):
        find_neighbors(store, NeighborQuery(table="midi.midistats.v1", midi_paths=(bad,)))


def _clustered_store(path, n=3000, seed=1):
    """n segments, 8 colours x 4 songs, unit 32-d vectors clustered by colour then song."""
    rng = np.random.default_rng(seed)
    store = Store.open(path)
    colors, songs_per_color = TINY_COLORS, 4
    centres = rng.standard_normal((len(colors), 32))
    song_centres = centres[:, None, :] + 0.6 * rng.standard_normal((len(colors), songs_per_color, 32))
    rows, vectors = [], {}
    for i in range(n):
        c, s = i % len(colors), (i // len(colors)) % songs_per_color
        sid = f"seg{i:05d}"
        rows.append(dict(segment_id=sid, song_id=f"{colors[c].lower()}-{s}", color=colors[c], start_s=float(i % 50),
                         end_s=float(i % 50) + 10, has_audio=True, has_midi=False, has_lyrics=False))
        vectors[sid] = None if i % 10 == 9 else unit(song_centres[c, s] + 0.5 * rng.standard_normal(32))
    store.ensure_table(SEGMENTS)
    store.upsert(SEGMENTS, pa.Table.from_pylist(rows, schema=SEGMENTS_SCHEMA))
    write_features(store, "audio.big.v1", vectors)
    return store, vectors


def test_indexed_search_agrees_with_exact(tmp_path):
    store, vectors = _clustered_store(tmp_path / "big")
    small = build_index(store, "audio.big.v1")  # 3000 rows < the default threshold
    assert small["kind"] == "exact" and small["rows"] == 2700
    summary = build_index(store, "audio.big.v1", IndexSettings(min_rows=1000, rows_per_partition=500))
    assert summary["kind"] == "IVF_PQ" and summary["metric"] == "cosine" and summary["num_partitions"] == 5
    absent = {sid for sid, v in vectors.items() if v is None}
    ann_always = SearchSettings(exact_below=0)
    recalls = []
    for sid in ["seg00007", "seg00100", "seg01234", "seg02998"]:
        exact = neighbors(store, "audio.big.v1", sid, k=10, exact=True)
        ann = neighbors(store, "audio.big.v1", sid, k=10, settings=ann_always)
        recalls.append(len({n.segment_id for n in exact} & {n.segment_id for n in ann}) / 10)
        by_id = {n.segment_id: n.distance for n in exact}
        shared = [n for n in ann if n.segment_id in by_id]
        np.testing.assert_allclose([n.distance for n in shared], [by_id[n.segment_id] for n in shared], atol=1e-4)
        colored = neighbors(store, "audio.big.v1", sid, k=10, colors=["Blue"], settings=ann_always)
        assert len(colored) == 10 and {n.color for n in colored} == {"Blue"}
        assert not {n.segment_id for n in ann + colored} & absent
    assert np.mean(recalls) >= 0.9


def test_inspect_reports_coverage_knn_against_chance_and_writes_png(tiny, tmp_path):
    tiny_store = tiny
    meta = segment_meta(tiny_store)
    rng = np.random.default_rng(3)
    color_dirs = {c: rng.standard_normal(16) for c in TINY_COLORS}
    song_dirs = {row["song_id"]: rng.standard_normal(16) for row in meta.values()}
    by_color = {s: color_dirs[m["color"]] + 0.1 * rng.standard_normal(16) for s, m in meta.items()}
    by_song = {s: song_dirs[m["song_id"]] + 0.01 * rng.standard_normal(16) for s, m in meta.items()}
    by_color["red-song0-seg0"] = None
    write_features(tiny_store, "audio.colorful.v1", by_color)
    write_features(tiny_store, "audio.songish.v1", by_song)
    report = inspect_table(tiny_store, "audio.colorful.v1", k=3, out_png=tmp_path / "map.png")
    assert report["coverage"]["Red"] == {"segments": 6, "present": 5, "present_pct": 83.3, "missing": {"absent": 1}}
    knn = report["knn"]
    assert report["unlabelled_vectors"] == 0 and report["dim"] == 16
    assert knn["accuracy"] >= 0.95 and knn["chance_majority"] == pytest.approx(6 / 47, abs=1e-3)
    assert knn["evaluated"] == 47 and set(knn["per_color"]) == set(TINY_COLORS)
    png = tmp_path / "map.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and report["map"]["points"] == 47
    # Vectors that only identify the song: neighbours from other songs carry no colour signal.
    songish = inspect_table(tiny_store, "audio.songish.v1", k=1)
    assert songish["knn"]["accuracy"] < 0.5 and "map" not in songish


def test_cli_neighbors_json_and_friendly_errors(toy):
    import json

    from typer.testing import CliRunner

    from cli import app

    store, meta, absent = toy
    sid = next(s for s in sorted(meta) if s not in absent)
    runner = CliRunner()
    ok = runner.invoke(app, ["neighbors", "--store", store.uri, "--space", "toy:v1", "--segment", sid,
                             "-k", "3", "--color", "Green", "--json"])
    assert ok.exit_code == 0, ok.output
    out = json.loads(ok.stdout)
    assert out["table"] == TABLE and [n["color"] for n in out["neighbors"]] == ["Green"] * 3
    bad = runner.invoke(app, ["neighbors", "--store", store.uri, "--table", TABLE, "--segment", sid, "--color", "Teal"])
    assert bad.exit_code == 2 and "unknown colour" in bad.output


# -- search space: raw statistics are z-scored, unit-norm embeddings are not ------------------
def _raw_stat_vectors(meta: dict, seed: int = 5) -> dict:
    """Like spectral statistics: a large near-constant level (dB-like), one huge-scale noise feature
    (MFCC-like) and small colour-informative features (fractions near 0.1)."""
    rng = np.random.default_rng(seed)
    vectors = {}
    for i, (sid, row) in enumerate(sorted(meta.items())):
        colour_part = 0.1 * np.eye(len(TINY_COLORS))[TINY_COLORS.index(row["color"])]
        colour_part = colour_part + 0.005 * rng.standard_normal(len(TINY_COLORS))
        large = [1000.0 + rng.standard_normal(), 300.0 * rng.standard_normal()]
        vectors[sid] = None if i % 9 == 4 else np.concatenate([large, colour_part])
    return vectors


def _same_colour_share(ids: list[str], matrix: np.ndarray, meta: dict, k: int) -> float:
    unit_rows = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    sims = unit_rows @ unit_rows.T
    np.fill_diagonal(sims, -np.inf)
    nearest = np.argsort(-sims, axis=1)[:, :k]
    colours = np.array([meta[sid]["color"] for sid in ids])
    return float((colours[nearest] == colours[:, None]).mean())


@pytest.fixture(scope="module")
def raw_stats(tiny):
    meta = segment_meta(tiny)
    vectors = _raw_stat_vectors(meta)
    write_features(tiny, "audio.rawstat.v1", vectors)
    return tiny, meta, vectors


def test_raw_statistics_are_searched_in_standardised_space(raw_stats):
    store, meta, vectors = raw_stats
    ids = sorted(s for s, v in vectors.items() if v is not None)
    raw = np.array([vectors[s] for s in ids])
    assert _same_colour_share(ids, raw, meta, k=3) < 0.25  # chance ~0.11: raw cosine sees only the noise
    found = {sid: neighbors(store, "audio.rawstat.v1", sid, k=3) for sid in ids}
    same = np.mean([[n.color == meta[sid]["color"] for n in hits] for sid, hits in found.items()])
    assert same >= 0.9
    # Distances are 1 - cosine after z-scoring with the present vectors' mean and std.
    z = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    z_unit = dict(zip(ids, z / np.linalg.norm(z, axis=1, keepdims=True)))
    query = ids[0]
    for n in found[query]:
        assert n.distance == pytest.approx(1 - z_unit[query] @ z_unit[n.segment_id], abs=1e-5)
    report = inspect_table(store, "audio.rawstat.v1", k=3)
    assert report["space"] == "standardised cosine" and report["knn"]["accuracy"] >= 0.8


def test_standardised_search_keeps_prefilter_null_and_self_guarantees(raw_stats):
    store, meta, vectors = raw_stats
    absent = {s for s, v in vectors.items() if v is None}
    query = next(s for s in sorted(vectors) if vectors[s] is not None and meta[s]["color"] == "Red")
    green = neighbors(store, "audio.rawstat.v1", query, k=3, colors=["Green"])
    assert len(green) == 3 and {n.color for n in green} == {"Green"}
    everything = neighbors(store, "audio.rawstat.v1", query, k=1000)
    assert len(everything) == len(vectors) - len(absent) - 1
    assert query not in {n.segment_id for n in everything} and not {n.segment_id for n in everything} & absent
    by_vector = neighbors(store, "audio.rawstat.v1", vectors[query], k=1)  # a raw vector query is z-scored too
    assert by_vector[0].segment_id == query and by_vector[0].distance == pytest.approx(0.0, abs=1e-5)


def test_unit_norm_table_keeps_plain_cosine(tiny):
    meta = segment_meta(tiny)
    rng = np.random.default_rng(8)
    vectors = {sid: unit(rng.standard_normal(DIM)) for sid in sorted(meta)}
    write_features(tiny, "audio.unitnorm.v1", vectors)
    query = unit(rng.standard_normal(DIM))
    found = neighbors(tiny, "audio.unitnorm.v1", query, k=len(meta))
    assert len(found) == len(meta)
    for n in found:
        assert n.distance == pytest.approx(1 - float(vectors[n.segment_id] @ query), abs=1e-5)
    assert inspect_table(tiny, "audio.unitnorm.v1", k=3)["space"] == "cosine"


def test_index_on_raw_statistics_stays_exact_and_search_still_works(tmp_path):
    store, vectors = _clustered_store(tmp_path / "mixed", n=400)
    settings = IndexSettings(min_rows=0, rows_per_partition=500)
    assert build_index(store, "audio.big.v1", settings)["kind"] == "IVF_PQ"
    # The same rows rewritten as raw statistics: per-feature scales from 0.01 to 1000.
    scales = np.logspace(-2, 3, 32)
    write_features(store, "audio.big.v1", {s: None if v is None else v * scales + 50.0 for s, v in vectors.items()})
    summary = build_index(store, "audio.big.v1", settings)
    assert summary["kind"] == "exact" and summary["space"] == "standardised cosine"
    assert "standardised space" in summary["note"] and summary["scalar_indexes"]
    ann_always = SearchSettings(exact_below=0)
    found = neighbors(store, "audio.big.v1", "seg00007", k=10, colors=["Blue"], settings=ann_always)
    assert len(found) == 10 and {n.color for n in found} == {"Blue"}
    assert found == neighbors(store, "audio.big.v1", "seg00007", k=10, colors=["Blue"], exact=True)
    with pytest.raises(SearchError, match="standardised space.*Drop --ann"):
        neighbors(store, "audio.big.v1", "seg00007", exact=False)
