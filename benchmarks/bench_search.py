"""Filtered neighbour search on 200k clustered 512-d vectors: index build, latency, recall, speed-up.

Data: 8 colours x 16 sub-clusters x 800 songs, generated in a 48-d latent space
and projected to 512-d with a little isotropic noise, then L2-normalised (real
embeddings occupy a low-dimensional manifold; isotropic 512-d noise would make
every neighbour a coin toss). Segments carry colour and song metadata in
`segments`; vectors live in a feature table, as in the real store.

Each query asks for k=10 neighbours of a stored vector restricted to ONE colour
drawn independently of the query's own colour (so most queries look for
segments of another colour: the hard case for a prefiltered IVF search).
Measured: `build_index` time; p50/p95 latency of `neighbors()` with the library
defaults (ANN); recall@10 against exact search with the same filter; and the
speed-up over (a) the store's exact path (`neighbors(exact=True)`: reads the
candidates' vectors, numpy cosine) and (b) in-memory numpy brute force over
the same candidates already resident in RAM. A sweep over nprobes /
refine_factor shows how the defaults were chosen.

    .venv/bin/python benchmarks/bench_search.py [--rows 200000] [--queries 100] [--write]

--write replaces the "## Search" section of BENCHMARKS.md (other sections stay).
"""

from __future__ import annotations

import argparse
import os
import platform
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
from featurestore import Store  # noqa: E402
from featurestore.schemas import SEGMENTS, SEGMENTS_SCHEMA, feature_schema  # noqa: E402
from featurestore.search import (  # noqa: E402
    DEFAULT_SETTINGS,
    build_index,
    candidate_segment_ids,
    neighbors,
)

SECTION_TITLE = "Search"
TABLE = "audio.bench.v1"
COLORS = ("Black", "Red", "Orange", "Yellow", "Green", "Blue", "Indigo", "Violet")
DIM, LATENT, SUBCLUSTERS, SONGS = 512, 48, 16, 800
WRITE_ROWS = 50_000
K = 10
SWEEP = [(10, 5), (10, 10), (20, 5), (20, 10), (40, 10), (20, 20)]


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


def make_queries(vectors: np.ndarray, count: int, seed: int) -> list[tuple[np.ndarray, str]]:
    rng = np.random.default_rng(seed + 1)
    picks = rng.choice(len(vectors), count, replace=False)
    return [(vectors[i], COLORS[int(rng.integers(len(COLORS)))]) for i in picks]


def ann_run(store: Store, queries, truth, settings) -> tuple[float, list[float]]:
    recalls, latencies = [], []
    for (query, color), expected in zip(queries, truth):
        found, seconds = timed(lambda: neighbors(store, TABLE, query, k=K, colors=[color], exact=False,
                                                 settings=settings))
        latencies.append(seconds)
        recalls.append(len(expected & {n.segment_id for n in found}) / K)
    return float(np.mean(recalls)), latencies


def exact_runs(store: Store, queries, vectors, colour) -> tuple[list[set], list[float], list[float]]:
    """Ground truth + latency of the store's exact path, and of numpy over RAM-resident candidates."""
    truth, store_lat, numpy_lat = [], [], []
    resident = {c: vectors[colour == i] for i, c in enumerate(COLORS)}
    for query, color in queries:
        found, seconds = timed(lambda: neighbors(store, TABLE, query, k=K, colors=[color], exact=True))
        truth.append({n.segment_id for n in found})
        store_lat.append(seconds)
        matrix = resident[color]
        _, seconds = timed(lambda: np.argpartition(1.0 - matrix @ query, K)[:K])
        numpy_lat.append(seconds)
    return truth, store_lat, numpy_lat


def unfiltered_latency(store: Store, queries, vectors) -> tuple[list[float], list[float], float]:
    ann, brute, recalls = [], [], []
    for query, _ in queries:
        found, seconds = timed(lambda: neighbors(store, TABLE, query, k=K))
        ann.append(seconds)
        top, seconds = timed(lambda: np.argpartition(1.0 - vectors @ query, K)[:K])
        brute.append(seconds)
        recalls.append(len({f"seg{i:07d}" for i in top} & {n.segment_id for n in found}) / K)
    return ann, brute, float(np.mean(recalls))


def threshold_runs(store: Store, queries, song_counts=(1, 4, 10, 40)) -> list[tuple[int, int, float, float, float]]:
    """Exact vs ANN latency as the candidate set grows (song filters): where `exact_below` should sit."""
    out = []
    for count in song_counts:
        songs = [f"song{s:04d}" for s in range(0, SONGS, SONGS // count)][:count]
        size = len(candidate_segment_ids(store, songs=songs))
        lat = {True: [], False: []}
        recalls = []
        for query, _ in queries[:8]:
            found = {}
            for exact in (True, False):
                res, seconds = timed(lambda: neighbors(store, TABLE, query, k=K, songs=songs, exact=exact))
                lat[exact].append(seconds)
                found[exact] = {n.segment_id for n in res}
            recalls.append(len(found[True] & found[False]) / K)
        out.append((count, size, ms(lat[True], 50), ms(lat[False], 50), float(np.mean(recalls))))
    return out


def ms(latencies, q) -> float:
    return 1000.0 * float(np.percentile(latencies, q))


def run(args) -> dict:
    vectors, colour, song = clustered_vectors(args.rows, args.seed)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        (store, _), write_s = timed(lambda: write_store(Path(tmp) / "store", vectors, colour, song))
        summary, build_s = timed(lambda: build_index(store, TABLE))
        queries = make_queries(vectors, args.queries, args.seed)
        candidates = [len(candidate_segment_ids(store, colors=[c])) for _, c in queries]
        truth, store_lat, numpy_lat = exact_runs(store, queries, vectors, colour)
        recall, ann_lat = ann_run(store, queries, truth, DEFAULT_SETTINGS)
        sweep = []
        for nprobes, refine in SWEEP:
            settings = replace(DEFAULT_SETTINGS, nprobes=nprobes, refine_factor=refine)
            r, lat = ann_run(store, queries[: args.sweep_queries], truth[: args.sweep_queries], settings)
            sweep.append((nprobes, refine, r, ms(lat, 50), ms(lat, 95)))
        unfiltered = unfiltered_latency(store, queries[: args.sweep_queries], vectors)
        by_size = threshold_runs(store, queries)
    return dict(rows=args.rows, queries=args.queries, write_s=write_s, build_s=build_s, index=summary,
                candidates=float(np.mean(candidates)), recall=recall, ann=ann_lat, exact_store=store_lat,
                exact_numpy=numpy_lat, sweep=sweep, unfiltered=unfiltered, sweep_queries=args.sweep_queries,
                by_size=by_size)


# -- report ------------------------------------------------------------------------------------
def section(r: dict, command: str) -> str:
    idx, s = r["index"], DEFAULT_SETTINGS
    ann50, store50, numpy50 = ms(r["ann"], 50), ms(r["exact_store"], 50), ms(r["exact_numpy"], 50)
    ann_u, brute_u, recall_u = r["unfiltered"]
    verdict = "meets" if r["recall"] >= 0.95 else "MISSES"
    lines = [
        f"## {SECTION_TITLE}",
        "",
        f"`{command}` on {platform.machine()} with {os.cpu_count()} CPU cores shared with other engineers' jobs "
        "while measured (latencies are medians over queries, so load inflates them but they are comparable "
        "within this table). Data: {rows:,} clustered unit-norm 512-d vectors (8 colours x 16 sub-clusters, "
        "800 songs; 48-d latent + noise), metadata in `segments`. Each query: k=10 with a one-colour "
        "prefilter (colour drawn independently of the query, avg {cand:,.0f} candidates), resolved on "
        "`segments` then applied as `segment_id IN (...)` prefilter on the feature table.".format(
            rows=r["rows"], cand=r["candidates"]),
        "",
        "| measure | value |",
        "|---|---|",
        f"| write {r['rows']:,} rows (segments + vectors, upserts) | {r['write_s']:.1f} s |",
        f"| `build_index` ({idx['kind']}, {idx.get('num_partitions')} partitions, {idx.get('num_sub_vectors')} "
        f"sub-vectors, cosine; + scalar indexes) | {r['build_s']:.1f} s |",
        f"| filtered ANN query p50 / p95 (nprobes={s.nprobes}, refine_factor={s.refine_factor}) | "
        f"{ann50:.1f} / {ms(r['ann'], 95):.1f} ms |",
        f"| recall@10 vs exact, same filter ({r['queries']} queries) | **{r['recall']:.3f}** ({verdict} >= 0.95) |",
        f"| exact via the store (`exact=True`: read candidates, numpy) p50 / p95 | {store50:.1f} / "
        f"{ms(r['exact_store'], 95):.1f} ms |",
        f"| speed-up of ANN over the store's exact path (p50) | **{store50 / ann50:.1f}x** |",
        f"| numpy brute force over candidates already in RAM p50 | {numpy50:.1f} ms |",
        f"| speed-up of ANN over in-RAM numpy (p50) | {numpy50 / ann50:.2f}x |",
        f"| unfiltered ANN query p50 (recall@10 {recall_u:.3f}) vs numpy over all {r['rows']:,} in RAM | "
        f"{ms(ann_u, 50):.1f} ms vs {ms(brute_u, 50):.1f} ms ({ms(brute_u, 50) / ms(ann_u, 50):.1f}x) |",
        "",
        f"Sweep ({r['sweep_queries']} of the same filtered queries; `SearchSettings` defaults: "
        f"nprobes={s.nprobes}, refine_factor={s.refine_factor}):",
        "",
        "| nprobes | refine_factor | recall@10 | p50 ms | p95 ms |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {rf} | {rec:.3f} | {p50:.1f} | {p95:.1f} |" for n, rf, rec, p50, p95 in r["sweep"]]
    lines += ["", f"Exact vs ANN by candidate-set size (song filters, 8 queries; `exact_below` = {s.exact_below}):",
              "", "| songs | candidates | exact p50 ms | ANN p50 ms | ANN recall@10 |", "|---|---|---|---|---|"]
    lines += [f"| {c} | {n:,} | {e:.1f} | {a:.1f} | {rec:.3f} |" for c, n, e, a, rec in r["by_size"]]
    lines += ["", NOTES, "", WEIGHT_FREE_NOTES]
    return "\n".join(lines) + "\n"


NOTES = """Notes: the filtered query's cost is dominated by the `segment_id IN (...)` prefilter (~25k quoted ids
parsed and matched per query), not by the IVF probe (compare the unfiltered row, whose 16 ms include the
metadata lookup). The ANN path therefore beats the store's exact path, which must also read every
candidate's 2 KB vector, but not numpy over vectors already resident in RAM, filtered or not: at this
size BLAS brute force over a 400 MB in-memory matrix is faster still; what the store buys is no load
step and bounded memory, not lower latency than RAM-resident numpy. Below `SearchSettings.exact_below` candidates, or without an index, search is exact.
`maximum_nprobes` is uncapped for filtered queries: with a cap (nprobes=20 of 48 partitions) 8 of 30
cross-colour queries came back short and recall fell to 0.67. An ANN answer shorter than the candidate set
falls back to exact search. Index choice: IVF_HNSW_SQ (cosine, defaults) was tried on the same 200k under
the same load: build 495 s wall / 114 s CPU vs IVF_PQ's 37 s / 24 s (10 k-means iterations; lance's default
50 costs 91 s CPU at equal recall), and its filtered recall@10 was 0.62 at default ef, 0.945 at ef=128
and 0.963 only with refine_factor=10, each slower than IVF_PQ; so `build_index` makes IVF_PQ with
8-d sub-vectors (64 for 512-d; 32 sub-vectors reached only 0.79-0.88 recall at refine_factor 10-20)."""


# Measured by hand with the CLI (see its text), not by this script; kept here so --write keeps it.
WEIGHT_FREE_NOTES = """**Weight-free tables.** `spectral` (151 librosa statistics) and `midistats` (50 MIDI statistics) store raw
statistics whose scales differ by orders of magnitude, so plain cosine on them sees only the largest few
features (nearest neighbours at cosine distance ~0.003-0.008). Tables whose vectors are not unit-norm (median |norm - 1|
>= 1e-3 over a 1,024-row sample) are therefore searched in *standardised cosine* (`featurestore/space.py`):
each feature z-scored with the mean/std of the table's present vectors (std floored at 1e-6; computed at
query time, cached per store, table and Lance version), the query vector included, then cosine, always
exactly (an ANN index over the raw vectors would rank by another metric, so `build_index` makes only the
scalar indexes there). Unit-norm tables (CLAP, MiniLM, fused) keep plain cosine and the ANN path; `inspect`
uses the same space as `neighbors` and prints it. Measured with `chromatic synth --songs N` (seed 0) -> `ingest` ->
`encode` spectral/midistats (`--workers 0`) -> `chromatic inspect` (k=10, neighbours from other songs only;
"raw" forces the old plain-cosine path); distances are medians over 40 random query segments (k=10, no filter):

| store | table | vectors (songs) | k-NN acc raw cosine | k-NN acc standardised | chance majority / prior | distance to 1st / 10th neighbour, raw -> standardised |
|---|---|---|---|---|---|---|
| 40 songs | audio.spectral.v1 | 282 (40) | 33.0% | **49.3%** | 14.5% / 12.6% | 0.0040 / 0.0090 -> 0.173 / 0.393 |
| 40 songs | midi.midistats.v1 | 154 (38) | 27.3% | **46.1%** | 20.8% / 14.4% | 0.0079 / 0.0171 -> 0.356 / 0.625 |
| 80 songs | audio.spectral.v1 | 583 (80) | 36.5% | **55.4%** | 13.9% / 12.5% | 0.0031 / 0.0065 -> 0.204 / 0.372 |
| 80 songs | midi.midistats.v1 | 301 (75) | 44.2% | **54.8%** | 18.3% / 13.7% | 0.0065 / 0.0126 -> 0.356 / 0.545 |

Cost on the 40-song spectral table: the first query in a process reads the table's 282 vectors for the
statistics (19 ms in all), later queries take 9 ms (statistics cached)."""

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--sweep-queries", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary store goes")
    parser.add_argument("--write", action="store_true", help="update the Search section of BENCHMARKS.md")
    args = parser.parse_args()
    command = "python benchmarks/bench_search.py " + " ".join(sys.argv[1:])
    text = section(run(args), command.strip())
    print(text)
    if args.write:
        replace_section(SECTION_TITLE, text)


if __name__ == "__main__":
    main()
