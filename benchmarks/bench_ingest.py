"""Ingest throughput and peak memory on a large upstream-layout parquet.

Generates a ~2 GB parquet shaped like the real media file (10-30 s of float32
audio at 44.1 kHz per row, small MIDI on ~44% of rows, audio on ~85%), written
incrementally in big row groups, then ingests it into a fresh store in a child
process and reports rows/s, MB/s and the child's peak RSS. A second child
re-ingests the same file (every row an update).

Generation also runs in its own child: Linux carries a parent's peak RSS into a
forked child's ru_maxrss across exec, so the parent must stay small for the
ingest child's ru_maxrss to mean anything. VmHWM (/proc/self/status) is
reported alongside as a cross-check.

    .venv/bin/python benchmarks/bench_ingest.py --gb 2 [--workdir DIR] [--batch-mb 32] [--keep]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RATE = 44_100
COLORS = ("Black", "Red", "Orange", "Yellow", "Green", "Blue", "Indigo", "Violet")
ROWS_PER_GROUP = 64  # ~220 MB row groups: the reader must stream inside a row group


def _midi_variants(count: int = 8) -> list[bytes]:
    import miditoolkit

    out = []
    for v in range(count):
        mid = miditoolkit.MidiFile(ticks_per_beat=480)
        inst = miditoolkit.Instrument(program=0, name="piano")
        for i in range(64):
            start = i * 240
            inst.notes.append(miditoolkit.Note(velocity=80, pitch=40 + (i * 7 + v) % 40, start=start, end=start + 200))
        mid.instruments.append(inst)
        buf = io.BytesIO()
        mid.dump(file=buf)
        out.append(buf.getvalue())
    return out


def _group(rng: np.random.Generator, first: int, rows: int, midis: list[bytes]) -> tuple[pa.Table, int]:
    records, size = [], 0
    for i in range(first, first + rows):
        seconds = float(rng.uniform(10, 30))
        has_audio, has_midi = bool(rng.random() < 0.85), bool(rng.random() < 0.44)
        wave = rng.random(int(seconds * SAMPLE_RATE), dtype=np.float32) - 0.5 if has_audio else None
        midi = midis[i % len(midis)] if has_midi else None
        size += (wave.nbytes if wave is not None else 0) + len(midi or b"")
        records.append(dict(
            segment_id=f"bench-{i:06d}", song_id=f"song-{i // 140:03d}", rainbow_color=COLORS[(i // 140) % 8],
            start_seconds=0.0, end_seconds=seconds, duration_seconds=seconds, lyric_text=f"lyric {i}" if i % 3 else "",
            concept="a concept", audio_waveform=wave.tobytes() if wave is not None else None,
            audio_sample_rate=SAMPLE_RATE, midi_binary=midi, has_audio=has_audio, has_midi=has_midi,
            bpm=120.0, key_signature_note="A", key_signature_mode="minor",
        ))
    return pa.Table.from_pylist(records), size


def generate(path: Path, target_bytes: int, small_pages: bool, seed: int = 0) -> tuple[int, int]:
    """Write groups until ~target_bytes of media; returns (rows, media bytes)."""
    rng, midis = np.random.default_rng(seed), _midi_variants()
    rows = total = 0
    writer = None
    try:
        while total < target_bytes:
            table, size = _group(rng, rows, ROWS_PER_GROUP, midis)
            # pyarrow's default write_batch_size (1024 values) puts a whole row group's blobs in one
            # data page; write_batch_size=1 gives ~one value per page (data_page_size is 1 MB).
            pages = {"write_batch_size": 1} if small_pages else {}
            writer = writer or pq.ParquetWriter(path, table.schema, compression="snappy", **pages)
            writer.write_table(table, row_group_size=ROWS_PER_GROUP)
            rows, total = rows + table.num_rows, total + size
    finally:
        if writer is not None:
            writer.close()
    return rows, total


def _vm_hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def child_generate(parquet: str, gb: float, layout: str) -> None:
    rows, media_bytes = generate(Path(parquet), int(gb * 1e9), small_pages=layout == "small-pages")
    print(json.dumps({"rows": rows, "media_bytes": media_bytes}))


def child_ingest(parquet: str, store_path: str, batch_mb: float | None) -> None:
    """Runs in its own process: ingest, then print the summary and peak RSS as JSON."""
    sys.path.insert(0, str(ROOT))
    from featurestore import Store
    from featurestore.ingest import IngestConfig, ingest_paths

    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store = Store.open(store_path)
    config = IngestConfig(batch_bytes=int(batch_mb * 2**20)) if batch_mb else IngestConfig()
    summary = ingest_paths(store, [Path(parquet)], config)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({**summary.to_dict(), "peak_rss_mb": peak_kb / 1024, "import_rss_mb": baseline_kb / 1024,
                      "vm_hwm_mb": _vm_hwm_mb(), "batch_mb": config.batch_bytes / 2**20}))


def _run_child(*args: str) -> dict:
    cmd = [sys.executable, __file__, *args]
    started = time.monotonic()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_s"] = time.monotonic() - started
    return result


def _report(label: str, result: dict, rows: int, media_bytes: int) -> None:
    seconds = result["seconds"]
    print(
        f"{label}: {rows} rows, {media_bytes / 1e6:.0f} MB media, batch {result['batch_mb']:g} MiB, "
        f"{seconds:.1f} s -> {rows / seconds:.1f} rows/s, {media_bytes / 1e6 / seconds:.1f} MB/s; "
        f"peak RSS {result['peak_rss_mb']:.0f} MB (VmHWM {result['vm_hwm_mb']:.0f} MB; "
        f"after imports {result['import_rss_mb']:.0f} MB); "
        f"ingested {result['ingested']}, updated {result['updated']}, rejected {result['rejected_total']}",
        flush=True,
    )


def bench_layout(workdir: Path, layout: str, gb: float, batch_mb: float | None) -> None:
    parquet, store = workdir / f"media-{layout}.parquet", workdir / f"store-{layout}"
    started = time.monotonic()
    made = _run_child("--child-generate", str(parquet), "--gb", str(gb), "--layout", layout)
    rows, media_bytes = made["rows"], made["media_bytes"]
    print(f"[{layout}] generated {parquet.stat().st_size / 1e9:.2f} GB ({rows} rows) "
          f"in {time.monotonic() - started:.0f} s", flush=True)
    ingest_args = ["--child", str(parquet), str(store)] + (["--batch-mb", str(batch_mb)] if batch_mb else [])
    _report(f"[{layout}] ingest (fresh store)", _run_child(*ingest_args), rows, media_bytes)
    _report(f"[{layout}] re-ingest (all updates)", _run_child(*ingest_args), rows, media_bytes)


LAYOUTS = ("small-pages", "row-group-pages")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=2.0, help="media gigabytes to generate")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put the parquet and store")
    parser.add_argument("--batch-mb", type=float, default=None, help="default: IngestConfig's")
    parser.add_argument("--layout", choices=(*LAYOUTS, "both"), default="both",
                        help="parquet page layout: ~one value per page, or pyarrow's default (a row group per page)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--child", nargs=2, metavar=("PARQUET", "STORE"), help=argparse.SUPPRESS)
    parser.add_argument("--child-generate", metavar="PARQUET", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_ingest(*args.child, args.batch_mb)
        return
    if args.child_generate:
        child_generate(args.child_generate, args.gb, args.layout)
        return
    for layout in LAYOUTS if args.layout == "both" else (args.layout,):
        workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.workdir))
        try:
            bench_layout(workdir, layout, args.gb, args.batch_mb)
        finally:
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
