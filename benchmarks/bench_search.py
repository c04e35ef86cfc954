"""Filtered neighbour search on 200k clustered 512-d vectors: sessions, index, exact-in-RAM, CLI.

Data: 8 colours x 16 sub-clusters x 800 songs, generated in a 48-d latent space
and projected to 512-d with a little isotropic noise, then L2-normalised (real
embeddings occupy a low-dimensional manifold; isotropic 512-d noise would make
every neighbour a coin toss). Segments carry colour and song metadata in
`segments`; vectors live in a feature table, as in the real store.

Each query asks for k=10 neighbours of a stored vector restricted to ONE colour
drawn independently of the query's own colour (so most queries look for
segments of another colour: the hard case for a prefiltered IVF search).
Measured side by side, query by query: a one-shot `neighbors()` call (opens a
session per query), the session's ANN path (`Searcher.search(exact=False)`:
filter resolved once to a row-address allow-list), the session's default path
(a repeated filter is read into RAM and searched exactly), and numpy brute force
over the same candidates already resident in RAM; recall@10 against exact search
with the same filter; the same without a filter; the throughput of 1,000
filtered queries through one `Searcher` (one by one, and batched per colour with
`search_many`); and the wall time of `python -m cli neighbors` for 1 and 100 queries.

    .venv/bin/python benchmarks/bench_search.py [--rows 200000] [--queries 100] [--store-cache DIR] [--write]

--store-cache keeps the built store in DIR and reuses it on later runs (building
takes minutes on a loaded machine). --write replaces the "## Search" section of
BENCHMARKS.md (other sections stay).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmd import replace_section  # noqa: E402  (benchmarks/ is the script's directory)
from search_report import SECTION_TITLE, ms, section  # noqa: E402
from featurestore import Store  # noqa: E402
from featurestore.resident import ResidentVectors  # noqa: E402
from featurestore.schemas import SEGMENTS, SEGMENTS_SCHEMA, feature_schema  # noqa: E402
from featurestore.store import sql_in  # noqa: E402
from featurestore.search import (  # noqa: E402
    DEFAULT_SETTINGS,
    SearchFilter,
    Searcher,
    build_index,
    candidate_segment_ids,
    neighbors,
)

TABLE = "audio.bench.v1"
COLORS = ("Black", "Red", "Orange", "Yellow", "Green", "Blue", "Indigo", "Violet")
DIM, LATENT, SUBCLUSTERS, SONGS = 512, 48, 16, 800
WRITE_ROWS = 50_000
K = 10
SWEEP = [(2, 20), (4, 20), (20, 5), (20, 10), (20, 20)]


def clustered_vectors(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors [rows, 512] unit-norm float32, colour index per row, song index per row)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((DIM, LATENT)))[0].T
    colour_centres = rng.standard_normal((len(COLORS), LATENT)) / np.sqrt(LATENT)
    sub = colour_centres[:, None, :] + 0.7 * rng.standard_normal((len(COLORS), SUBCLUSTERS, LATENT)) / np.sqrt(LATENT)
    song_colour = np.arange(SONGS) % len(COLORS)
    song_centres = sub[song_colour, rng.integers(0, SUBCLUSTERS, SONGS)]
    song_centres += 0.5 * rng.standard_normal((SONGS, LATENT)) / np.sqrt(LATENT)
    song = rng.integers(0, SONGS, rows)
    latent = song_centres[song] + 0.6 * rng.standard_normal((rows, LATENT)) / np.sqrt(LATENT)
    vectors = (latent @ basis + 0.15 * rng.standard_normal((rows, DIM)) / np.sqrt(DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, song_colour[song], song


def _segment_rows(ids: np.ndarray, song: np.ndarray, colour: np.ndarray) -> pa.Table:
    rows = [
        dict(segment_id=sid, song_id=f"song{s:04d}", color=COLORS[c], start_s=0.0, end_s=20.0,
             has_audio=True, has_midi=False, has_lyrics=False)
        for sid, s, c in zip(ids, song, colour)
    ]
    return pa.Table.from_pylist(rows, schema=SEGMENTS_SCHEMA)


def write_store(path: Path, vectors: np.ndarray, colour: np.ndarray, song: np.ndarray) -> tuple[Store, np.ndarray]:
    store = Store.open(path)
    ids = np.array([f"seg{i:07d}" for i in range(len(vectors))])
    store.ensure_table(SEGMENTS)
    store.ensure_table(TABLE, feature_schema((DIM,)))
    for start in range(0, len(ids), WRITE_ROWS):
        part = slice(start, start + WRITE_ROWS)
        n = len(ids[part])
        store.upsert(SEGMENTS, _segment_rows(ids[part], song[part], colour[part]))
        store.upsert(TABLE, pa.table({
            "segment_id": ids[part],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors[part].reshape(-1)), DIM),
            "present": np.ones(n, bool), "status": pa.nulls(n, pa.string()),
            "encoded_at": pa.nulls(n, pa.timestamp("us", tz="UTC")),
        }))
    store.optimize(SEGMENTS)
    store.optimize(TABLE)
    return store, ids


# -- measurement ---------------------------------------------------------------------------------
def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def make_queries(vectors: np.ndarray, count: int, seed: int) -> list[tuple[int, str]]:
    """(row of the query vector, filter colour drawn independently of the row's own colour)."""
    rng = np.random.default_rng(seed + 1)
    picks = rng.choice(len(vectors), count, replace=False)
    return [(int(i), COLORS[int(rng.integers(len(COLORS)))]) for i in picks]


def recall(found, expected: set) -> float:
    return len(expected & {n.segment_id for n in found}) / K


def filtered_runs(store: Store, queries, vectors, colour, ids) -> dict:
    """Per query, side by side: one-shot neighbors(), session ANN, session default, numpy over RAM candidates."""
    ann_session, auto_session = Searcher(store, TABLE), Searcher(store, TABLE)
    resident = {c: (vectors[colour == i], ids[colour == i]) for i, c in enumerate(COLORS)}
    out = {name: [] for name in ("oneshot", "ann", "auto", "in_list", "numpy")}
    rec = {name: [] for name in ("oneshot", "ann", "auto", "in_list")}
    # Ids resolved ahead (not timed): the IN-list row measures only the query it used to cost.
    in_lists = {c: f"present = true AND {sql_in('segment_id', ids[colour == i])}" for i, c in enumerate(COLORS)}
    # The default path in steady state: every colour searched twice first (its first use goes to the index,
    # the second reads its candidates into RAM); that warm-up is timed on its own.
    _, warm_up = timed(lambda: [auto_session.search(vectors[i], K, SearchFilter(colors=(c,)))
                                for c in COLORS for i in (0, 1)])
    for i, (row, color) in enumerate(queries):
        query, flt = vectors[row], SearchFilter(colors=(color,))
        # Truth is numpy over every candidate: the exact paths themselves prune with the subspace bound.
        matrix, set_ids = resident[color]
        expected = set(set_ids[np.argpartition(1.0 - matrix @ query, K)[:K]].tolist())
        paths = {
            "oneshot": lambda: {n.segment_id for n in neighbors(store, TABLE, query, k=K, colors=[color])},
            "ann": lambda: {n.segment_id for n in ann_session.search(query, K, flt, exact=False)},
            "auto": lambda: {n.segment_id for n in auto_session.search(query, K, flt)},
            "in_list": lambda: set(in_list_query(store, query, in_lists[color])),
            "numpy": lambda: np.argpartition(1.0 - resident[color][0] @ query, K)[:K],
        }
        for name in rotated(list(paths), i):  # no path always runs right after another (cache, load order)
            found, seconds = timed(paths[name])
            out[name].append(seconds)
            if name in rec:
                rec[name].append(len(expected & found) / K)
    scanned = auto_session._resident.get(SearchFilter()) is not None
    return {"latency": out, "recall": {name: float(np.mean(r)) for name, r in rec.items()}, "warm_up_s": warm_up,
            "warm_up_table_scan": scanned, "warm_up_rows_read_by_filter": auto_session.rows_read_by_filter}


def rotated(names: list[str], shift: int) -> list[str]:
    shift %= len(names)
    return names[shift:] + names[:shift]


def in_list_query(store: Store, query: np.ndarray, predicate: str) -> list[str]:
    """The pre-session ANN query, kept for comparison: the filter as a `segment_id IN (...)` prefilter."""
    result = (store.table(TABLE).search(query, vector_column_name="vector").distance_type("cosine")
              .where(predicate, prefilter=True).minimum_nprobes(DEFAULT_SETTINGS.nprobes).maximum_nprobes(0)
              .refine_factor(DEFAULT_SETTINGS.refine_factor).limit(K).select(["segment_id", "_distance"]).to_arrow())
    return result.column("segment_id").to_pylist()


def unfiltered_runs(store: Store, queries, vectors, ids) -> dict:
    ann_session, auto_session, preloaded = Searcher(store, TABLE), Searcher(store, TABLE), Searcher(store, TABLE)
    _, preload_s = timed(preloaded.preload)
    preloaded.search(vectors[0], K)  # its first query builds the table's subspace bound (timed apart)
    out, rec = {"ann": [], "auto": [], "preloaded": [], "numpy": []}, {"ann": [], "auto": [], "preloaded": []}
    for i, (row, _) in enumerate(queries):
        query = vectors[row]
        expected = set(ids[np.argpartition(1.0 - vectors @ query, K)[:K]])
        paths = {"numpy": lambda: np.argpartition(1.0 - vectors @ query, K)[:K],
                 "ann": lambda: ann_session.search(query, K, exact=False),
                 "auto": lambda: auto_session.search(query, K),
                 "preloaded": lambda: preloaded.search(query, K)}
        for name in rotated(list(paths), i):
            found, seconds = timed(paths[name])
            out[name].append(seconds)
            if name in rec:
                rec[name].append(recall(found, expected))
    return {"latency": out, "recall": {name: float(np.mean(r)) for name, r in rec.items()}, "preload_s": preload_s}


def throughput(store: Store, vectors, count: int, seed: int) -> dict:
    """1,000 filtered queries through one Searcher: one by one, then batched per colour (search_many)."""
    queries = make_queries(vectors, count, seed + 7)
    searcher, opened = timed(lambda: Searcher(store, TABLE))
    _, one_by_one = timed(lambda: [searcher.search(vectors[r], K, SearchFilter(colors=(c,))) for r, c in queries])
    batched_session = Searcher(store, TABLE)
    by_colour: dict[str, list[np.ndarray]] = {}
    for row, color in queries:
        by_colour.setdefault(color, []).append(vectors[row])
    _, batched = timed(lambda: [batched_session.search_many(qs, K, SearchFilter(colors=(c,)))
                                for c, qs in by_colour.items()])
    return {"count": count, "open_s": opened, "one_by_one_qps": count / one_by_one, "batched_qps": count / batched,
            "resident_mb": searcher._resident.nbytes / 2**20}


def cli_runs(store: Store, ids, count: int, workdir: Path) -> dict:
    """Wall time of `python -m cli neighbors` in a fresh interpreter: 1 query, and `count` queries in one call."""
    base = [sys.executable, "-m", "cli", "neighbors", "--store", store.uri, "--table", TABLE,
            "--color", "Red", "-k", str(K), "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    id_file = workdir / "query_ids.txt"
    id_file.write_text("\n".join(ids[:: max(1, len(ids) // count)][:count]) + "\n")
    runs = {"python -c pass": [sys.executable, "-c", "pass"], "1 query": base + ["--segment", str(ids[1])],
            f"{count} queries": base + ["--segments-file", str(id_file)]}
    out = {}
    for name, command in runs.items():
        walls, cpus, seconds = [], [], {}
        for _ in range(3):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            done, wall = timed(lambda: subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                                                      check=True))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            walls.append(wall)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if name != "python -c pass":
                seconds = json.loads(done.stdout)["seconds"]
        out[name] = {"wall_s": float(np.median(walls)), "cpu_s": float(np.median(cpus)), **seconds}
    return out


def import_runs(store: Store, ids) -> dict:
    """Seconds to import lancedb vs pylance vs the search module (fresh interpreters, median of 3), and
    whether `python -m cli neighbors` imports lancedb at all."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = {}
    for module in ("lancedb", "lance", "featurestore.search"):
        walls = [timed(lambda: subprocess.run([sys.executable, "-c", f"import {module}"], env=env, check=True))[1]
                 for _ in range(3)]
        out[module] = float(np.median(walls))
    command = [sys.executable, "-X", "importtime", "-m", "cli", "neighbors", "--store", store.uri,
               "--table", TABLE, "--segment", str(ids[1]), "-k", str(K), "--json"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    out["cli_imports_lancedb"] = any(line.rstrip().endswith("| lancedb") for line in done.stderr.splitlines())
    return out


def sweep_runs(store: Store, queries, vectors) -> list[tuple[int, int, float, float, float]]:
    """Filtered ANN recall/latency as `nprobes` (scaled by 1/selectivity for filters) and refine_factor vary."""
    truth = Searcher(store, TABLE)
    out = []
    for nprobes, refine in SWEEP:
        session = Searcher(store, TABLE, replace(DEFAULT_SETTINGS, nprobes=nprobes, refine_factor=refine))
        lat, rec = [], []
        for row, color in queries:
            flt = SearchFilter(colors=(color,))
            expected = {n.segment_id for n in truth.search(vectors[row], K, flt, exact=True)}
            found, seconds = timed(lambda: session.search(vectors[row], K, flt, exact=False))
            lat.append(seconds)
            rec.append(recall(found, expected))
        out.append((nprobes, refine, float(np.mean(rec)), ms(lat, 50), ms(lat, 95)))
    return out


def threshold_runs(store: Store, queries, song_counts=(1, 4, 10, 40)) -> list[tuple[int, int, float, float, float]]:
    """One-shot exact vs ANN latency as the candidate set grows (song filters): where `exact_below` should sit."""
    out = []
    for count in song_counts:
        songs = [f"song{s:04d}" for s in range(0, SONGS, SONGS // count)][:count]
        size = len(candidate_segment_ids(store, songs=songs))
        lat = {True: [], False: []}
        recalls = []
        for row, _ in queries[:8]:
            found = {}
            for exact in (True, False):
                res, seconds = timed(lambda: neighbors(store, TABLE, row_id(row), k=K, songs=songs, exact=exact))
                lat[exact].append(seconds)
                found[exact] = {n.segment_id for n in res}
            recalls.append(len(found[True] & found[False]) / K)
        out.append((count, size, ms(lat[True], 50), ms(lat[False], 50), float(np.mean(recalls))))
    return out


# (filter colours, nprobes for an unfiltered query): the unfiltered rows at 20 and at all 48 partitions
# separate the scan's cost per probed row from the masked path's cost per allowed row.
COST_CASES = (((), 20), ((), 48), (("Red",), 20), (("Red", "Blue"), 20), (("Red", "Blue", "Green", "Violet"), 20))


def cost_runs(store: Store, queries, vectors, repeats: int = 20) -> dict:
    """Calibrate the cost model: resident exact vs index latency as the candidate set grows (1, 2, 4 colours,
    everything), the index with refine_factor 1 and the default; then fit its constants (non-negative least
    squares)."""
    rows = []
    for colors, nprobes in COST_CASES:
        flt, settings = SearchFilter(colors=colors), replace(DEFAULT_SETTINGS, nprobes=nprobes)
        session = Searcher(store, TABLE, settings)
        no_refine = Searcher(store, TABLE, replace(settings, refine_factor=1))
        session.search(vectors[0], K, flt, exact=True)  # reads the set into RAM (not timed)
        candidates = session._candidates(flt)
        size, probes = session._candidate_count(candidates), session._nprobes(candidates)
        lat = {"exact": [], "index": [], "index_rf1": []}
        for i, (row, _) in enumerate(queries[:repeats]):
            paths = {"exact": lambda: session.search(vectors[row], K, flt, exact=True),
                     "index": lambda: session.search(vectors[row], K, flt, exact=False),
                     "index_rf1": lambda: no_refine.search(vectors[row], K, flt, exact=False)}
            for name in rotated(list(paths), i):
                lat[name].append(timed(paths[name])[1])
        index, share = session._ann_index(), min(1.0, probes / session._ann_index().partitions)
        rows.append({"colors": len(colors) or 8, "candidates": size, "nprobes": probes,
                     "probed_rows": len(session._present_rows()[1]) * share,
                     "allowed_probed": size * share if colors else 0.0, "sub_vectors": index.sub_vectors,
                     "work_per_row": session._resident.get(flt).work_per_row,  # < 1: the subspace bound prunes
                     "default_picks_exact": session.exact_is_cheaper(size, probes, K, bool(colors),
                                                                     session._resident.get(flt).work_per_row),
                     **{name: ms(v, 50) for name, v in lat.items()}})
    return {"rows": rows, "fit": fit_cost_model(rows)}


def fit_cost_model(rows: list[dict]) -> dict:
    """SearchSettings' cost constants from cost_runs' p50s (ms): exact = n * dim * work * e (median over the rows;
    work: the share of the full product the subspace bound leaves);
    index = F + (probed rows * c + allowed rows in them * a) * sub_vectors + k * refine_factor * r (NNLS)."""
    from scipy.optimize import nnls

    exact = float(np.median([r["exact"] * 1e6 / (r["candidates"] * DIM * r.get("work_per_row", 1.0)) for r in rows]))
    design, target = [], []
    for r in rows:
        for rf, name in ((1, "index_rf1"), (DEFAULT_SETTINGS.refine_factor, "index")):
            design.append([1.0, r["probed_rows"] * r["sub_vectors"] * 1e-6,
                           r["allowed_probed"] * r["sub_vectors"] * 1e-6, K * rf * 1e-3])
            target.append(r[name])
    (fixed, per_code, per_allowed, refine), _ = nnls(np.array(design), np.array(target))
    return {"exact_ns_per_value": exact, "index_fixed_ms": float(fixed), "index_ns_per_code": float(per_code),
            "index_ns_per_allowed_code": float(per_allowed), "index_refine_us_per_row": float(refine)}


def read_runs(store: Store) -> dict:
    """Seconds to read candidates' vectors into RAM (`Searcher`'s own read): one colour (a scan with the
    colour's row-address allow-list), and the whole table (a plain scan), each in a fresh session."""
    out = {}
    for name, flt in (("one colour", SearchFilter(colors=("Red",))), ("whole table", SearchFilter())):
        session = Searcher(store, TABLE)
        candidates = session._candidates(flt)
        read = lambda: ResidentVectors.from_batches(session._vector_batches(candidates), session.space, DIM)  # noqa: E731
        resident, seconds = timed(read)
        out[name] = {"rows": len(resident.ids), "s": seconds}
    return out


def row_id(row: int) -> str:
    return f"seg{row:07d}"


def open_store(args, vectors, colour, song, tmp: Path) -> tuple[Store, float, float, dict | None]:
    cached = args.store_cache
    if cached is not None and (cached / f"{TABLE}.lance").is_dir():
        return Store.open(cached), float("nan"), float("nan"), None
    path = cached if cached is not None else tmp / "store"
    (store, _), write_s = timed(lambda: write_store(path, vectors, colour, song))
    summary, build_s = timed(lambda: build_index(store, TABLE))
    return store, write_s, build_s, summary


def run(args) -> dict:
    vectors, colour, song = clustered_vectors(args.rows, args.seed)
    ids = np.array([row_id(i) for i in range(len(vectors))])
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        store, write_s, build_s, summary = open_store(args, vectors, colour, song, Path(tmp))
        queries = make_queries(vectors, args.queries, args.seed)
        candidates = [len(candidate_segment_ids(store, colors=[c])) for _, c in queries]
        result = dict(rows=args.rows, queries=args.queries, write_s=write_s, build_s=build_s, index=summary,
                      candidates=float(np.mean(candidates)), load=os.getloadavg())
        some = queries[: args.sweep_queries]
        parts = {
            "filtered": lambda: filtered_runs(store, queries, vectors, colour, ids),
            "unfiltered": lambda: unfiltered_runs(store, some, vectors, ids),
            "throughput": lambda: throughput(store, vectors, args.session_queries, args.seed),
            "cli": lambda: cli_runs(store, ids, args.cli_queries, Path(tmp)),
            "imports": lambda: import_runs(store, ids),
            "sweep": lambda: sweep_runs(store, some, vectors),
            "by_size": lambda: threshold_runs(store, queries),
            "cost": lambda: cost_runs(store, queries, vectors),
            "reads": lambda: read_runs(store),
        }
        wanted = args.only.split(",") if args.only else list(parts)
        for name in wanted:
            result[name] = parts[name]()
            print(f"{name} done at load {os.getloadavg()[0]:.1f}", file=sys.stderr)
        result["load_after"] = os.getloadavg()
        result["quiet_protocol"] = args.quiet_protocol
        result["sweep_queries"] = args.sweep_queries
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--sweep-queries", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--session-queries", type=int, default=1000)
    parser.add_argument("--cli-queries", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary store goes")
    parser.add_argument("--store-cache", type=Path, default=None, help="build the store here once, reuse it later")
    parser.add_argument("--write", action="store_true", help="update the Search section of BENCHMARKS.md")
    parser.add_argument("--results", type=Path, default=None, help="save the measurements here as JSON")
    parser.add_argument("--render", action="store_true", help="only re-render the section from --results")
    parser.add_argument("--only", default=None, help="comma-separated parts to run (exploration; never --write)")
    parser.add_argument("--quiet-protocol", action="store_true",
                        help="record that the run was made under the quiet-machine protocol (see the report)")
    args = parser.parse_args()
    command = "python benchmarks/bench_search.py " + " ".join(a for a in sys.argv[1:] if a != "--render")
    if args.render:
        measured = json.loads(args.results.read_text())
    else:
        measured = run(args)
        measured["command"] = command
        if args.results:
            args.results.write_text(json.dumps(measured))
        if args.only:
            print(json.dumps({k: v for k, v in measured.items() if k in args.only.split(",")}, indent=1))
            return
    text = section(measured, measured.get("command", command).strip())  # (re-rendering keeps the run's command)
    print(text)
    if args.write:
        replace_section(SECTION_TITLE, text)


if __name__ == "__main__":
    main()
