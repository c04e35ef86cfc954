"""Benchmark: the join and fusion training at the real data's scale, on CPU.

Builds a temporary store with ~12k segments (84 songs, 8 colours) and four
feature tables of random colour-correlated data with the real missingness:
audio 512-d (85% present), a 128 x 256 float16 piano roll (44%), lyrics 384-d
(60%), concept 384-d (100%). Each measurement runs in its own child process so
that its peak memory (ru_maxrss) is its own:

  read   Store.read of (segment_id, vector) of every feature table: the floor
  join   featurestore.join.join of the four inputs
  arrays join + fusion.dataset.build_dataset (numpy arrays, soft targets)
  train  fusion.train.train for a fixed number of epochs (early stopping off)

Usage: .venv/bin/python benchmarks/bench_train.py [--segments 12000] [--epochs 3] [--write]
(--write replaces the "## Train" section of BENCHMARKS.md, keeping the others.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmd import replace_section  # benchmarks/ is the script's directory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECTION_TITLE = "Train"

# The parent process stays small on purpose: a child's ru_maxrss starts from the
# size of the process it was forked from, so the store is built in a child too
# and featurestore/torch are imported only inside the children.

COLORS = ("Red", "Orange", "Yellow", "Green", "Blue", "Indigo", "Violet", "Black")
INPUTS = {"audio": "bench:v1", "midi": "bench:v1", "lyrics": "bench:v1", "concept": "bench:v1"}
# (modality, kind, shape, dtype, share present)
TABLES = (
    ("audio", "vector", (512,), "float32", 0.85),
    ("midi", "tensor", (128, 256), "float16", 0.44),
    ("lyrics", "vector", (384,), "float32", 0.60),
    ("concept", "vector", (384,), "float32", 1.00),
)
WRITE_ROWS = 1000  # rows per upsert: bounds memory while writing the 800 MB piano-roll table


def build_store(path: Path, n_segments: int, seed: int = 0):
    from featurestore.schemas import SEGMENTS, SEGMENTS_SCHEMA
    from featurestore.store import Store
    from featurestore.taxonomy import color_index, color_modes

    rng = np.random.default_rng(seed)
    store = Store.open(path)
    songs_per_color = 84 // len(COLORS)
    per_song = int(np.ceil(n_segments / (songs_per_color * len(COLORS))))
    rows, now = [], datetime.now(timezone.utc)
    for color in COLORS:
        modes = color_modes(color)
        for song in range(songs_per_color):
            for k in range(per_song):
                rows.append(dict(
                    segment_id=f"{color}-{song}-{k:04d}", song_id=f"{color}-{song}", color=color,
                    temporal=modes.label_string("temporal"), spatial=modes.label_string("spatial"),
                    ontological=modes.label_string("ontological"), has_audio=True, has_midi=True,
                    has_lyrics=True, source="bench", ingested_at=now,
                ))
    rows = rows[:n_segments]
    store.ensure_table(SEGMENTS)
    store.upsert(SEGMENTS, pa.Table.from_pylist(rows, schema=SEGMENTS_SCHEMA))
    ids = np.array([r["segment_id"] for r in rows])
    colors = np.array([color_index(r["color"]) for r in rows])
    for modality, kind, shape, dtype, share in TABLES:
        write_table(store, modality, kind, shape, dtype, ids, colors, rng.random(len(ids)) < share, rng)
    return store


def fake_values(kind, shape, colors, rng) -> np.ndarray:
    """Colour-correlated values: vectors around a colour centre; rolls with notes in a colour's pitch band."""
    if kind == "vector":
        centres = np.random.default_rng(len(shape) + shape[0]).normal(size=(9, shape[0]))
        return (0.05 * centres[colors] + rng.normal(size=(len(colors), shape[0]))).astype(np.float32)
    rolls = np.zeros((len(colors), *shape), dtype=np.float16)
    for i, color in enumerate(colors):
        pitches = np.clip(36 + 4 * color + rng.integers(0, 24, size=12), 0, shape[0] - 1)
        starts = rng.integers(0, shape[1] - 16, size=12)
        for pitch, start, length in zip(pitches, starts, rng.integers(4, 16, size=12)):
            rolls[i, pitch, start : start + length] = rng.uniform(0.3, 1.0)
    return rolls


def write_table(store, modality, kind, shape, dtype, ids, colors, present, rng) -> None:
    from featurestore.registry import EncoderRecord, put_encoder_record
    from featurestore.schemas import feature_schema

    name = f"{modality}.bench.v1"
    size = int(np.prod(shape))
    store.ensure_table(name, feature_schema(shape, dtype))
    vector_type = pa.list_(pa.float16() if dtype == "float16" else pa.float32(), size)
    for start in range(0, len(ids), WRITE_ROWS):
        part = slice(start, start + WRITE_ROWS)
        values = fake_values(kind, shape, colors[part], rng).reshape(len(ids[part]), size)
        flat = pa.array(values.reshape(-1).astype(np.float16 if dtype == "float16" else np.float32))
        vectors = pa.FixedSizeListArray.from_arrays(flat, type=vector_type, mask=pa.array(~present[part]))
        store.upsert(name, pa.table({
            "segment_id": ids[part], "vector": vectors, "present": present[part],
            "status": np.where(present[part], None, "absent"),
            "encoded_at": pa.array([None] * len(ids[part]), pa.timestamp("us", tz="UTC")),
        }))
    store.optimize(name)
    put_encoder_record(store, EncoderRecord(
        name, modality, "bench", "v1", kind, shape, dtype, "{}", None, None, "bench", "1", state="complete",
        rows=len(ids), present=int(present.sum()), absent=int((~present).sum()),
    ))


# -- children: one measurement each -------------------------------------------------------------
def child(task: str, store_path: str, epochs: int, threads: int, segments: int) -> dict:
    from featurestore.store import Store

    started = time.perf_counter()
    out: dict = {"load": os.getloadavg()[0]}
    if task == "build":
        build_store(Path(store_path), segments)
    store = Store.open(store_path, create=False)
    if task in ("build", "baseline"):
        pass  # imports + opening the store: the floor under every other row
    elif task == "read":
        for modality, *_ in TABLES:
            store.read(f"{modality}.bench.v1", columns=["segment_id", "vector"])
    elif task in ("join", "arrays"):
        from featurestore.join import join

        result = join(store, INPUTS)
        if task == "arrays":
            from fusion.dataset import build_dataset

            data = build_dataset(result)
            out["array_mb"] = round(sum(v.nbytes for v in data.values.values()) / 2**20)
    else:
        from fusion.train import TrainConfig, train

        config = TrainConfig(epochs=epochs, patience=epochs + 1, threads=threads)
        result = train(store, INPUTS, config)
        out["epoch_s"] = [round(row["seconds"], 1) for row in result.history]
        out["val_mode_acc"] = result.metrics["overall"]["mode_acc"]
        out["val_color_acc"] = result.metrics["overall"]["color_acc"]
        out["train_rows"], out["val_rows"] = result.summary["train"], result.summary["val"]
    out["seconds"] = round(time.perf_counter() - started, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def run_child(task: str, store_path: Path, args, threads: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--child", task, "--store", str(store_path), "--epochs", str(args.epochs),
           "--threads", str(threads), "--segments", str(args.segments)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {task} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown(results: dict, args) -> str:
    steps = [
        ("import + open the store (baseline)", "baseline", ""),
        ("Store.read of the 4 tables (floor)", "read", "segment_id + vector columns"),
        ("join (4 inputs, left join onto segments)", "join", "index_in + numpy gather; Lance versions recorded"),
        ("join + build_dataset", "arrays",
         f"arrays in memory: {results['arrays']['array_mb']} MB (piano rolls float16)"),
    ]
    for threads in (1, 0):
        train = results[f"train{threads}"]
        steps.append((
            f"train, {args.epochs} epochs, concat, {'1 torch thread' if threads else 'torch default threads'}",
            f"train{threads}",
            f"per epoch (train + val) s: {', '.join(map(str, train['epoch_s']))}; {train['train_rows']} train / "
            f"{train['val_rows']} val rows; total includes imports, join, artifacts, report and ONNX export",
        ))
    lines = [
        f"## {SECTION_TITLE}",
        "",
        f"`.venv/bin/python benchmarks/bench_train.py --segments {args.segments} --epochs {args.epochs} --write` "
        f"({datetime.now(timezone.utc):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} CPU cores shared with "
        f"other jobs, torch CPU; {args.segments} segments: audio 512-d 85% present, piano roll 128x256 float16 44%, "
        "lyrics 384-d 60%, concept 384-d 100%; building the store took "
        f"{results['build']['seconds']:.0f} s). Each row is a fresh child process; peak = its ru_maxrss; "
        "load = the 1-minute load average when the step started (other engineers' jobs).",
        "",
        "| step | wall s | peak RSS MB | load | notes |",
        "|---|---|---|---|---|",
    ]
    for label, key, note in steps:
        r = results[key]
        lines.append(f"| {label} | {r['seconds']} | {r['peak_rss_mb']} | {r['load']:.1f} | {note} |")
    one, default = (results[f"train{t}"]["epoch_s"] for t in (1, 0))
    lines += [
        "",
        f"Epochs took {min(one)}-{max(one)} s with one torch thread and {min(default)}-{max(default)} s with "
        "torch's default (one thread per core): on a CPU that other jobs keep busy, torch's threads wait on "
        "each other, so `chromatic train --threads 1` (TrainConfig.threads) is the faster setting here; on an "
        "idle machine the default is. The join costs little over reading the same columns (the floor); "
        "build_dataset adds the numpy copies (float16 piano rolls, a NaN/overflow check) and the labels.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=12_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update the Train section of BENCHMARKS.md")
    tasks = ("build", "baseline", "read", "join", "arrays", "train")
    parser.add_argument("--child", choices=tasks, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.store, args.epochs, args.threads, args.segments)))
        return
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        results = {}
        for task in ("build", "baseline", "read", "join", "arrays"):
            results[task] = run_child(task, Path(tmp) / "store", args)
            print(task, results[task], flush=True)
        for threads in (1, 0):
            results[f"train{threads}"] = run_child("train", Path(tmp) / "store", args, threads)
            print(f"train threads={threads}", results[f"train{threads}"], flush=True)
    section = markdown(results, args)
    print(section)
    if args.write:
        print(f"wrote {replace_section(SECTION_TITLE, section)}")


if __name__ == "__main__":
    main()
