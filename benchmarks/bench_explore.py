"""Explorer map latency on a 200k-row, 512-d feature table: the sampled map endpoint over HTTP.

The store is bench_search.py's synthetic one (8 colours, 800 songs, clustered
unit-norm vectors). Each measurement is a GET of /api/map from the app served
by uvicorn on 127.0.0.1, timed end to end (sample, PCA, metadata, JSON,
transfer). "Cold" calls use a new seed each, so the map cache never answers;
"cached" repeats one. The baseline reads every present vector of the table
(what a map without sampling would need before drawing anything), in the same
run, so the ratio is robust to a loaded machine.

    .venv/bin/python benchmarks/bench_explore.py [--rows 200000] [--repeats 5] [--write]

--write replaces the "## Explorer map" section of BENCHMARKS.md (other sections stay).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_search import TABLE, clustered_vectors, write_store  # noqa: E402
from benchmd import replace_section  # noqa: E402  (benchmarks/ is the script's directory)
from explorer.app import create_app  # noqa: E402
from explorer.server import running_server  # noqa: E402
from featurestore.feature_table import PRESENT  # noqa: E402
from featurestore.space import batch_matrix  # noqa: E402

SECTION_TITLE = "Explorer map"
CASES = (("PCA, 1000 points", {"points": 1000}), ("PCA, 3000 points (default)", {}),
         ("PCA, 10000 points", {"points": 10000}), ("PCA, 3000 points, colour = Green", {"color": "Green"}),
         ("t-SNE, 1000 points", {"points": 1000, "method": "tsne"}))


def get_map(url: str, **params) -> tuple[float, int, dict]:
    query = urllib.parse.urlencode({"table": TABLE, **params})
    start = time.perf_counter()
    with urllib.request.urlopen(f"{url}/api/map?{query}", timeout=600) as response:
        body = response.read()
    return time.perf_counter() - start, len(body), json.loads(body)


def full_read_seconds(store) -> float:
    start = time.perf_counter()
    rows = 0
    for batch in store.scan(TABLE, ["segment_id", "vector"], where=PRESENT, batch_size=8192):
        rows += len(batch_matrix(batch)[0])
    return time.perf_counter() - start


def measure(store, repeats: int) -> tuple[list[dict], float]:
    rows = []
    with running_server(create_app(store)) as url:
        for points in (10, 100):  # the first requests pay the app's and sklearn's imports and the space check
            get_map(url, points=points, seed=10_000)
        for label, params in CASES:
            cold = [get_map(url, **params, seed=seed) for seed in range(repeats)]
            cached = get_map(url, **params, seed=0)
            times = [c[0] for c in cold]
            rows.append({"case": label, "p50": float(np.median(times)), "max": max(times), "cached": cached[0],
                         "kb": cold[0][1] / 1024, "shown": cold[0][2]["shown"], "eligible": cold[0][2]["eligible"]})
    return rows, full_read_seconds(store)


def section(rows: list[dict], full_read: float, n_rows: int, repeats: int) -> str:
    lines = [f"## {SECTION_TITLE}", "",
             f"`benchmarks/bench_explore.py --rows {n_rows} --repeats {repeats}`: GET /api/map over HTTP on a "
             f"{n_rows:,}-row, 512-d table (bench_search's synthetic store), {platform.machine()}, "
             f"{os.cpu_count()} CPUs shared with other jobs, 1-min load average {os.getloadavg()[0]:.0f} at the end "
             "(numbers are noisy; compare within a row).", "",
             "| map | points shown / eligible | cold p50 (s) | cold max (s) | cached (s) | response (KiB) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['shown']:,} / {r['eligible']:,} | {r['p50']:.2f} | {r['max']:.2f} | "
                     f"{r['cached']:.3f} | {r['kb']:.0f} |")
    default = next(r for r in rows if "default" in r["case"])
    lines += ["", f"Reading every present vector of the table (no sampling, before any projection) took "
              f"{full_read:.2f} s in the same run: the default sampled map answers in "
              f"{default['p50'] / full_read:.2f}x that time. Only `segment_id` and `present` are scanned in full; "
              "the sampled rows' vectors are fetched by row position (Lance `take`), and the page never receives a "
              "vector, only 2-D coordinates and metadata."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="Replace the section in BENCHMARKS.md.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        vectors, colour, song = clustered_vectors(args.rows)
        store, _ = write_store(Path(tmp) / "store", vectors, colour, song)
        print(f"store of {args.rows:,} rows built in {time.perf_counter() - start:.0f} s", flush=True)
        rows, full_read = measure(store, args.repeats)
    text = section(rows, full_read, args.rows, args.repeats)
    print(text)
    if args.write:
        print(f"wrote {replace_section(SECTION_TITLE, text)}")


if __name__ == "__main__":
    main()
