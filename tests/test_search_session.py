"""Search sessions: filters resolved once to row addresses, resident exact search, relabels, edge-case filters."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from test_search import _clustered_store, midistats_store, tiny, write_features  # noqa: F401 (fixtures)

from featurestore import Store, TableNotFoundError
from featurestore.rowmask import allowlist
from featurestore.schemas import SEGMENTS
from featurestore.search import IndexSettings, SearchFilter, Searcher, SearchSettings, build_index, neighbors

TABLE = "audio.big.v1"
ANN_ALWAYS = SearchSettings(exact_below=0)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """3000 segments (every tenth without a vector) with a 5-partition cosine IVF_PQ index."""
    store, vectors = _clustered_store(tmp_path_factory.mktemp("session") / "store")
    assert build_index(store, TABLE, IndexSettings(min_rows=1000, rows_per_partition=500))["kind"] == "IVF_PQ"
    return store, vectors


def _relabel(store: Store, segment_id: str, color: str) -> None:
    """Re-ingest one segment with another colour: the same upsert on `segments` that ingest makes."""
    row = store.read(SEGMENTS, where=f"segment_id = '{segment_id}'")
    store.upsert(SEGMENTS, row.set_column(row.schema.get_field_index("color"), "color", pa.array([color])))


def test_relabelled_segment_is_found_under_its_new_colour_never_the_old(tmp_path):
    store, vectors = _clustered_store(tmp_path / "relabel", n=1200)
    build_index(store, TABLE, IndexSettings(min_rows=500, rows_per_partition=300))
    target = "seg00001"  # colour index 1 (Orange) in _clustered_store; its nearest Orange neighbour is itself
    before = Searcher(store, TABLE, ANN_ALWAYS)
    assert target in {n.segment_id for n in before.search(vectors[target], 5, SearchFilter(colors=("Orange",)))}
    _relabel(store, target, "Green")
    assert before.versions[1] is not None and before.refresh()
    for searcher in (before, Searcher(store, TABLE), Searcher(store, TABLE, ANN_ALWAYS)):
        for exact in (True, False, None):
            green = searcher.search(vectors[target], 5, SearchFilter(colors=("Green",)), exact=exact)
            orange = searcher.search(vectors[target], 50, SearchFilter(colors=("Orange",)), exact=exact)
            assert green[0].segment_id == target and green[0].color == "Green"
            assert target not in {n.segment_id for n in orange} and {n.color for n in orange} == {"Orange"}
    assert neighbors(store, TABLE, vectors[target], k=1, colors=["Green"])[0].segment_id == target


def test_a_session_answers_from_its_snapshot_until_refreshed(tmp_path):
    store, vectors = _clustered_store(tmp_path / "snapshot", n=400)
    searcher = Searcher(store, TABLE)
    _relabel(store, "seg00003", "Red")
    found = searcher.search(vectors["seg00003"], 1, SearchFilter(colors=("Green",)))
    assert found[0].segment_id == "seg00003"  # the segments version the session opened: still Green
    assert searcher.refresh() and not searcher.refresh()
    assert searcher.search(vectors["seg00003"], 1, SearchFilter(colors=("Red",)))[0].segment_id == "seg00003"


@pytest.mark.parametrize("exact", [True, False])
def test_filter_edge_cases_behave_as_documented(indexed, exact):
    store, vectors = indexed
    searcher = Searcher(store, TABLE, ANN_ALWAYS)
    query = "seg00007"
    # No match: an empty answer, not an error.
    assert searcher.search(query, 10, SearchFilter(where="start_s > 1000"), exact=exact) == []
    # Every segment matches: the same answer as no filter.
    everything = searcher.search(query, 10, SearchFilter(where="start_s >= 0"), exact=exact)
    assert [n.segment_id for n in everything] == [n.segment_id for n in searcher.search(query, 10, exact=True)]
    # Fewer candidates than k: all of them that have a vector, nearest first, without the query itself.
    song = "blue-1"
    small = searcher.search(query, 500, SearchFilter(songs=(song,)), exact=exact)
    with_vector = {s for s, v in vectors.items() if v is not None and s != query}
    expected = {n.segment_id for n in searcher.search(query, 3000, exact=True) if n.song_id == song}
    assert 10 < len(small) < 500 and {n.segment_id for n in small} == expected and expected <= with_vector
    assert all(a.distance <= b.distance for a, b in zip(small, small[1:]))


def test_search_many_equals_one_by_one_and_exact_is_resident_or_streamed(indexed):
    store, vectors = indexed
    queries = ["seg00007", "seg00100", vectors["seg01234"], "seg02998"]
    blue = SearchFilter(colors=("Blue",))
    resident = Searcher(store, TABLE)
    streamed = Searcher(store, TABLE, SearchSettings(resident_mb=0))
    batch = resident.search_many(queries, 10, blue, exact=True)
    assert resident._resident.nbytes > 0 and streamed._resident.nbytes == 0
    for query, found in zip(queries, batch):
        for other in (resident.search(query, 10, blue, exact=True), streamed.search(query, 10, blue, exact=True)):
            assert [n.segment_id for n in other] == [n.segment_id for n in found]
            np.testing.assert_allclose([n.distance for n in other], [n.distance for n in found], atol=1e-6)
        assert len(found) == 10 and {n.color for n in found} == {"Blue"}
    ann = Searcher(store, TABLE, ANN_ALWAYS).search_many(queries, 10, blue, exact=False)
    recall = np.mean([len({n.segment_id for n in a} & {n.segment_id for n in e}) / 10 for a, e in zip(ann, batch)])
    assert recall >= 0.9 and all(len(found) == 10 for found in ann)


def test_repeated_filter_moves_to_ram_with_the_same_answers(indexed):
    store, _ = indexed
    searcher = Searcher(store, TABLE, ANN_ALWAYS)  # every set counts as large: first use goes to the index
    red = SearchFilter(colors=("Red",))
    first = searcher.search("seg00010", 10, red)
    assert searcher._resident.nbytes == 0
    second = searcher.search("seg00010", 10, red)
    assert searcher._resident.nbytes > 0  # the second use read Red's vectors into RAM: exact from now on
    assert [n.segment_id for n in second] == [n.segment_id for n in searcher.search("seg00010", 10, red, exact=True)]
    assert len({n.segment_id for n in first} & {n.segment_id for n in second}) >= 9
    # A set whose product the cost model prices above an index query stays on the index however often it is
    # searched (here: a product made to look 10^6 times dearer than it is).
    big_sets_on_index = Searcher(store, TABLE, SearchSettings(exact_below=0, exact_ns_per_value=1e5))
    for _ in range(3):
        assert len(big_sets_on_index.search("seg00010", 10, red)) == 10
    assert big_sets_on_index._resident.nbytes == 0


def test_allowlist_selects_exactly_the_given_rows(tmp_path):
    store = Store.open(tmp_path / "mask")
    rng = np.random.default_rng(2)
    # Two writes -> two fragments; 6000 rows in the first -> a bitmap container (> 4096 values in 2^16).
    write_features(store, "audio.mask.v1", {f"a{i:05d}": rng.standard_normal(4) for i in range(6000)})
    write_features(store, "audio.mask.v1", {f"b{i:05d}": rng.standard_normal(4) for i in range(300)})
    dataset = store.dataset("audio.mask.v1")
    rows = dataset.to_table(columns=["segment_id"], with_row_address=True)
    assert len({a >> 32 for a in rows.column("_rowaddr").to_pylist()}) == 2
    for pick in (np.arange(len(rows)) % 3 == 0, np.arange(len(rows)) < 5000, np.zeros(len(rows), bool)):
        addrs = rows.column("_rowaddr").to_numpy()[pick]
        got = dataset.scanner(columns=["segment_id"], row_addr_allowlist=allowlist(addrs)).to_table()
        expected = np.asarray(rows.column("segment_id").to_pylist())[pick]
        assert sorted(got.column("segment_id").to_pylist()) == sorted(expected)


def test_missing_table_and_bad_k_are_typed_errors(indexed):
    store, _ = indexed
    with pytest.raises(TableNotFoundError, match="audio.big.v1"):
        store.dataset("audio.nope.v1")
    from featurestore.errors import SearchError

    with pytest.raises(SearchError, match="positive integer"):
        Searcher(store, TABLE).search("seg00007", 0)


def test_cli_takes_several_segments_and_a_file_of_ids(indexed, tmp_path):
    from typer.testing import CliRunner

    from cli import app

    store, _ = indexed
    ids = tmp_path / "ids.txt"
    ids.write_text("# queries\nseg00100\n\nseg00200\n")
    runner = CliRunner()
    out = runner.invoke(app, ["neighbors", "--store", store.uri, "--table", TABLE, "--segment", "seg00007",
                              "--segments-file", str(ids), "-k", "4", "--color", "Blue", "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.stdout)
    assert [r["query"] for r in body["results"]] == ["seg00007", "seg00100", "seg00200"]
    assert all(len(r["neighbors"]) == 4 and {n["color"] for n in r["neighbors"]} == {"Blue"} for r in body["results"])
    assert set(body["seconds"]) == {"open", "encode", "search"}
    table = runner.invoke(app, ["neighbors", "--store", store.uri, "--table", TABLE, "--segment", "seg00007",
                                "--segment", "seg00100", "-k", "2"])
    assert table.exit_code == 0 and "neighbours of seg00100" in table.stdout
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    bad = runner.invoke(app, ["neighbors", "--store", store.uri, "--table", TABLE, "--segments-file", str(empty)])
    assert bad.exit_code == 2 and "holds no segment ids" in bad.output


def test_several_files_in_one_call_answer_like_one_call_each(midistats_store, tmp_path):
    from encoders.query import NeighborQuery, find_neighbors

    store, midi = midistats_store
    picked = [s for s in sorted(midi) if midi[s] is not None][:2]
    paths = []
    for sid in picked:
        paths.append(tmp_path / f"{sid}.mid")
        paths[-1].write_bytes(midi[sid])
    together = find_neighbors(store, NeighborQuery(table="midi.midistats.v1", midi_paths=tuple(paths), k=4,
                                                   colors=("Red", "Violet")))
    assert together.queries == [str(p) for p in paths] and together.seconds["encode"] > 0
    for path, found in zip(paths, together.found):
        alone = find_neighbors(store, NeighborQuery(table="midi.midistats.v1", midi_paths=(path,), k=4,
                                                    colors=("Red", "Violet"))).found[0]
        assert [n.segment_id for n in found] == [n.segment_id for n in alone]
        assert {n.color for n in found} <= {"Red", "Violet"}


def test_one_shot_calls_share_the_row_map_until_a_table_changes(tmp_path, monkeypatch):
    import featurestore.search as search
    from featurestore.search_cache import SNAPSHOTS

    store, vectors = _clustered_store(tmp_path / "cache", n=600)
    reads = []
    original = search.present_rows
    monkeypatch.setattr(search, "present_rows", lambda dataset: reads.append(int(dataset.version)) or original(dataset))
    target = "seg00001"  # Orange
    orange = ["Orange"]
    for _ in range(3):  # one-shot calls in one process read the row map of a table version once
        assert neighbors(store, TABLE, vectors[target], k=1, colors=orange)[0].segment_id == target
    assert len(reads) == 1
    # A relabel makes a new `segments` version: the filter is resolved again, the feature rows are reused.
    _relabel(store, target, "Green")
    assert target not in {n.segment_id for n in neighbors(store, TABLE, vectors[target], k=20, colors=orange)}
    assert neighbors(store, TABLE, vectors[target], k=1, colors=["Green"])[0].segment_id == target
    assert len(reads) == 1
    # An encode that adds a row makes a new feature-table version: a stale map would not hold the new row.
    _add_segment(store, "seg99999", "Green", vectors[target])
    found = neighbors(store, TABLE, vectors[target], k=2, colors=["Green"], exact=True)
    assert {n.segment_id for n in found} == {target, "seg99999"} and len(reads) == 2
    # Dropped and re-created at the same version number: new data files, so nothing stale is reused.
    version = int(store.dataset(TABLE).version)
    store.drop_table(TABLE)
    moved = {sid: (None if v is None else -v) for sid, v in vectors.items()}
    write_features(store, TABLE, moved)
    assert int(store.dataset(TABLE).version) <= version
    assert neighbors(store, TABLE, -vectors[target], k=1, colors=["Green"])[0].segment_id == target
    assert len(reads) == 3 and SNAPSHOTS.nbytes <= SNAPSHOTS.budget


def _add_segment(store: Store, segment_id: str, color: str, vector: np.ndarray) -> None:
    row = store.read(SEGMENTS, where="segment_id = 'seg00001'").to_pylist()[0]
    store.upsert(SEGMENTS, pa.Table.from_pylist([{**row, "segment_id": segment_id, "color": color}],
                                                schema=store.dataset(SEGMENTS).schema))
    write_features(store, TABLE, {segment_id: vector})


def test_sets_gathered_from_the_whole_table_equal_sets_read_alone(indexed):
    store, _ = indexed
    by_filter = Searcher(store, TABLE, SearchSettings(read_us_per_row_by_filter=0.0))  # never scans the table
    # Reading scattered rows made to look dear: the first set read into RAM scans the whole table instead.
    gathered = Searcher(store, TABLE, SearchSettings(read_us_per_row_by_filter=1e6))
    for colors in (("Blue",), ("Red", "Green"), ("Blue",)):
        flt = SearchFilter(colors=colors)
        for query in ("seg00007", "seg01234"):
            alone, from_table = (s.search(query, 10, flt, exact=True) for s in (by_filter, gathered))
            assert [n.segment_id for n in alone] == [n.segment_id for n in from_table] and len(alone) == 10
            np.testing.assert_allclose([n.distance for n in alone], [n.distance for n in from_table], atol=1e-6)
    rows = len(gathered._present_rows()[0])
    assert gathered._resident.get(SearchFilter()) is not None and by_filter._resident.get(SearchFilter()) is None
    blue = gathered._resident.get(SearchFilter(colors=("Blue",)))
    assert 0 < len(blue.ids) < rows and blue.unit.flags["C_CONTIGUOUS"]
    # The table is scanned only when it fits the budget twice over (itself and the sets gathered from it).
    tight_mb = 1.5 * rows * (4 * 32 + 72) / 2**20
    tight = Searcher(store, TABLE, SearchSettings(read_us_per_row_by_filter=1e6, resident_mb=tight_mb))
    assert len(tight.search("seg00007", 10, SearchFilter(colors=("Blue",)), exact=True)) == 10
    assert tight._resident.get(SearchFilter()) is None and tight._resident.nbytes > 0


def test_cost_model_sends_colour_sets_to_ram_and_the_whole_table_to_the_index():
    from featurestore.search_cost import DEFAULT_SETTINGS, exact_is_cheaper

    def cheaper(candidates: int, nprobes: int, masked: bool = True) -> bool:  # the benchmark's shape
        return exact_is_cheaper(DEFAULT_SETTINGS, 200_000, 512, 48, 64, candidates, nprobes, 10, masked)

    assert cheaper(25_000, 48) and cheaper(50_000, 48)  # one or two colours: every partition probed
    assert not cheaper(200_000, 20, masked=False)  # no filter: 20 of 48 partitions beat a product over all
    flips = [cheaper(n, 48) for n in range(5_000, 200_001, 5_000)]
    assert flips == sorted(flips, reverse=True)  # exact while small, the index from some size on, never back
    # A mask makes the index dearer, so a set of the same size goes to RAM sooner with one than without.
    assert sum(cheaper(n, 48) for n in range(5_000, 200_001, 5_000)) >= sum(
        cheaper(n, 48, masked=False) for n in range(5_000, 200_001, 5_000))


def test_a_pruned_product_in_ram_beats_the_index_where_the_full_product_does_not():
    from featurestore.search_cost import DEFAULT_SETTINGS, exact_is_cheaper

    def cheaper(work_per_row: float) -> bool:  # the benchmark's shape, no filter: 20 of 48 partitions probed
        return exact_is_cheaper(DEFAULT_SETTINGS, 200_000, 512 * work_per_row, 48, 64, 200_000, 20, 10, False)

    assert not cheaper(1.0) and cheaper(0.13)  # the subspace bound's product (1/8) plus a few rows in full


def test_preload_holds_the_table_and_unfiltered_answers_stay_exact(indexed):
    store, _ = indexed
    session = Searcher(store, TABLE)
    held = session.preload()
    assert held > 0 and session._resident.get(SearchFilter()) is not None
    assert session.preload() == held  # already in RAM: nothing read again
    truth = Searcher(store, TABLE)
    for query in ("seg00007", "seg01234", "seg02500"):
        found, expected = session.search(query, 10), truth.search(query, 10, exact=True)
        assert [n.segment_id for n in found] == [n.segment_id for n in expected]
    assert Searcher(store, TABLE, SearchSettings(resident_mb=0)).preload() == 0  # over the budget: nothing held


def test_byte_lru_keeps_under_budget_drops_least_recent_and_caches_none():
    from featurestore.lru import ByteLRU

    cache = ByteLRU(10, lambda value: 0 if value is None else len(value))
    cache.put("a", "xxxx")
    cache.put("b", "xxxx")
    assert cache.get("a") == "xxxx"  # now the most recent
    cache.put("c", "xxxx")  # 12 > 10: drops the least recent, "b"
    assert (cache.get("b"), cache.get("a"), cache.nbytes) == (None, "xxxx", 8)
    cache.put("big", "x" * 11)  # larger than the whole budget: not kept, nothing dropped for it
    assert cache.get("big") is None and len(cache) == 2
    made = []
    assert cache.get_or_make("none", lambda: made.append(1)) is None
    assert cache.get_or_make("none", lambda: made.append(1)) is None and made == [1]  # a kept None is a hit
