"""Model quality on the synthetic corpus: validation accuracy and MIDI-only scoring.

Builds (or reuses) a store from `chromatic synth --songs N`, encodes it with the
offline encoders, trains a grid of fusion settings and scores MIDI-only
candidates from songs of another seed, the scorer's real use. Prints a
markdown table for BENCHMARKS.md ("Model quality").

    .venv/bin/python benchmarks/bench_quality.py --store /tmp/quality80 --songs 80
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from encoders.job import EncodeConfig, run_encode  # noqa: E402
from featurestore.ingest import ingest_paths  # noqa: E402
from featurestore.store import Store  # noqa: E402
from fusion.model import Standardize  # noqa: E402
from fusion.scorer import ChromaticScorer  # noqa: E402
from fusion.train import TrainConfig, train  # noqa: E402
from synth import SynthConfig, write_corpus  # noqa: E402

TEXT = {"lyrics": "minilm:v1", "concept": "minilm:v1"}
# name -> (inputs, modality dropout, solo dropout); names ending in NO_STANDARDISE
# train with the model's per-input standardisation switched off (an ablation).
NO_STANDARDISE = "(no input standardisation)"
GRID = {
    "all, pianoroll, md 0.15": ({"audio": "spectral:v1", "midi": "pianoroll:v1", **TEXT}, 0.15, 0.0),
    "all, pianoroll, md 0.40": ({"audio": "spectral:v1", "midi": "pianoroll:v1", **TEXT}, 0.40, 0.0),
    "all, pianoroll, solo 0.3": ({"audio": "spectral:v1", "midi": "pianoroll:v1", **TEXT}, 0.15, 0.3),
    "all, midistats, solo 0.3": ({"audio": "spectral:v1", "midi": "midistats:v1", **TEXT}, 0.15, 0.3),
    f"all, midistats, solo 0.3 {NO_STANDARDISE}": (
        {"audio": "spectral:v1", "midi": "midistats:v1", **TEXT}, 0.15, 0.3),
    "text only": (TEXT, 0.15, 0.3),
    "MIDI only, pianoroll": ({"midi": "pianoroll:v1"}, 0.15, 0.0),
    "MIDI only, midistats": ({"midi": "midistats:v1"}, 0.15, 0.0),
}
ENCODINGS = (("spectral", ("audio",)), ("pianoroll", ("midi",)), ("midistats", ("midi",)),
             ("minilm", ("lyrics", "concept")))


def build_store(path: Path, songs: int, seed: int) -> Store:
    store = Store.open(path)
    corpus = store.side_path("corpus", f"synth-{songs}-{seed}.parquet")
    if not corpus.exists():
        write_corpus(SynthConfig(songs=songs, seed=seed), corpus)
    ingest_paths(store, [corpus])
    for encoder, modalities in ENCODINGS:
        run_encode(store, EncodeConfig(encoder, "v1", modalities=modalities, workers=0))
    return store


def candidates(store: Store, seed: int) -> list[dict]:
    """One MIDI segment per song of an unseen seed: (id, true colour, bytes)."""
    out = store.side_path("corpus", f"candidates-{seed}.parquet")
    if not out.exists():
        write_corpus(SynthConfig(songs=32, seed=seed, segments_per_song=(2, 3), min_seconds=8, max_seconds=12), out)
    rows = pq.read_table(out, columns=["segment_id", "rainbow_color", "midi_binary"]).to_pylist()
    picked, seen = [], set()
    for row in rows:
        song = row["segment_id"].split("_")[0]
        if row["midi_binary"] and song not in seen:
            seen.add(song)
            picked.append(row)
    return picked


def candidate_accuracy(run_dir: Path, picked: list[dict]) -> tuple[float, int]:
    scorer = ChromaticScorer(run_dir)
    results = scorer.score_batch([{"id": c["segment_id"], "midi": c["midi_binary"]} for c in picked],
                                 target="Green", concept="a song")
    truth = {c["segment_id"]: c["rainbow_color"] for c in picked}
    hits = [truth[r.id] == r.predicted_color for r in results]
    return float(np.mean(hits)), len({r.predicted_color for r in results})


def fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--songs", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    store = build_store(args.store, args.songs, args.seed)
    picked = candidates(store, args.seed + 1000)
    print(f"{len(picked)} MIDI-only candidates from unseen songs\n")
    print("| model | modality dropout | solo dropout | val colour acc | no-lyrics colour / mode acc "
          "| candidates colour acc (colours predicted) |")
    print("|---|---|---|---|---|---|")
    for name, (inputs, dropout, solo) in GRID.items():
        config = TrainConfig(epochs=args.epochs, seed=args.seed, threads=1, modality_dropout=dropout,
                             solo_dropout=solo)
        ablation = name.endswith(NO_STANDARDISE)
        with mock.patch.object(Standardize, "set_statistics", lambda self, values: None) if ablation else nullcontext():
            result = train(store, inputs, config)
        overall, no_lyrics = result.metrics["overall"], result.metrics["subsets"]["no_lyrics"]
        cand = candidate_accuracy(result.run_dir, picked) if "midi" in inputs else None
        cand_text = "-" if cand is None else f"{cand[0]:.3f} ({cand[1]})"
        print(f"| {name} | {dropout} | {solo} | {fmt(overall['color_acc'])} | "
              f"{fmt(no_lyrics['color_acc'])} / {fmt(no_lyrics['mode_acc'])} | {cand_text} |", flush=True)


if __name__ == "__main__":
    main()
