"""Synthetic corpus: wall time, file size and peak memory of `chromatic synth`.

Each size runs in its own child process so its peak RSS is its own. Default
settings (6-12 segments per song, 5-30 s, 44.1 kHz) unless told otherwise.

    .venv/bin/python benchmarks/bench_synth.py [--songs 40 80] [--seed 0] [--workdir DIR] [--write]

--write replaces the "Synthetic corpus" section of BENCHMARKS.md with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmd import replace_section  # benchmarks/ is the script's directory

ROOT = Path(__file__).resolve().parent.parent
SECTION_TITLE = "Synthetic corpus (chromatic synth)"


def child(songs: int, seed: int, out: str) -> None:
    sys.path.insert(0, str(ROOT))
    from synth import SynthConfig, write_corpus

    summary = write_corpus(SynthConfig(songs=songs, seed=seed), Path(out))
    total = summary.total
    print(json.dumps({
        "songs": songs, "segments": summary.segments, "seconds": summary.seconds, "mb": summary.bytes / 1e6,
        "audio_seconds": summary.audio_seconds, "failures": len(summary.failures),
        "coverage": {m: total.coverage(m) for m in ("audio", "midi", "lyrics")},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def run(songs: int, seed: int, workdir: Path) -> dict:
    out = workdir / f"synth-{songs}.parquet"
    cmd = [sys.executable, __file__, "--child", str(songs), "--seed", str(seed), "--out", str(out)]
    started = time.monotonic()
    stdout = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(stdout.strip().splitlines()[-1])
    result["wall_s"] = time.monotonic() - started
    return result


def markdown(results: list[dict]) -> str:
    lines = [
        f"## {SECTION_TITLE}",
        "",
        f"`benchmarks/bench_synth.py` on {platform.machine()} with {os.cpu_count()} CPU cores (shared with other"
        " work while measured), default settings (6-12 segments per song, 5-30 s skewed short, 44.1 kHz float32"
        " audio, zstd parquet). Generation time excludes interpreter start; peak RSS is the child process's.",
        "",
        "| songs | segments | audio (s) | generate (s) | segments/s | file (MB) | peak RSS (MB) | audio / MIDI / lyrics |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cov = r["coverage"]
        lines.append(
            f"| {r['songs']} | {r['segments']} | {r['audio_seconds']:.0f} | {r['seconds']:.1f} | "
            f"{r['segments'] / r['seconds']:.1f} | {r['mb']:.0f} | {r['peak_rss_mb']:.0f} | "
            f"{cov['audio']:.0%} / {cov['midi']:.0%} / {cov['lyrics']:.0%} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, nargs="+", default=[40, 80])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.seed, args.out)
        return
    workdir = Path(tempfile.mkdtemp(prefix="bench-synth-", dir=args.workdir))
    try:
        results = []
        for songs in args.songs:
            results.append(run(songs, args.seed, workdir))
            print(json.dumps(results[-1]))
        text = markdown(results)
        print(text)
        if args.write:
            replace_section(SECTION_TITLE, text)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
