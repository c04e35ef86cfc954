"""Model quality on the synthetic corpus, measured as the scorer is used, with error bars.

Builds (or reuses) a store from `chromatic synth --songs N`, encodes it with the
offline encoders, and trains every model of GRID on the same K song-grouped
folds (`compare --folds K`). Each row is the mean ± sd over folds of: full-row
colour and mode accuracy, the no-lyrics subset, and the MIDI-candidate view
(each validation row with MIDI scored with MIDI alone, as ChromaticScorer
scores a generated candidate): colour accuracy, ranking AUC of the chromatic
match, calibration error (ECE, 10 bins); plus how many folds collapsed.
Prints a markdown table for BENCHMARKS.md ("Model quality").

    .venv/bin/python benchmarks/bench_quality.py --store /tmp/quality80 --songs 80 --folds 5
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmd import replace_section  # noqa: E402  (benchmarks/ is the script's directory)
from encoders.job import EncodeConfig, run_encode  # noqa: E402
from featurestore.ingest import ingest_paths  # noqa: E402
from featurestore.input_specs import name_inputs  # noqa: E402
from featurestore.store import Store  # noqa: E402
from fusion.folds import aggregate, mean_sd_text, run_summary  # noqa: E402
from fusion.presets import PRESETS, SCORER_ENCODING, SCORER_MIDI  # noqa: E402
from fusion.train import TrainConfig, train_folds  # noqa: E402
from synth import SynthConfig, write_corpus  # noqa: E402

TEXT = {"lyrics": "minilm:v1", "concept": "minilm:v1"}
AUDIO = {"audio": "spectral:v1"}
MIDISTATS_V1 = {"midi": "midistats:v1"}
V1_AND_ROLL = name_inputs("midi", ["midistats:v1", "pianoroll:v1"])  # {"midi.midistats": ..., "midi.pianoroll": ...}
# name -> (inputs, TrainConfig overrides); every row uses the same folds and seed.
GRID: dict[str, tuple[dict, dict]] = {
    "all, pianoroll": ({**AUDIO, "midi": "pianoroll:v1", **TEXT}, {}),
    "all, midistats v1": ({**AUDIO, **MIDISTATS_V1, **TEXT}, {}),
    "all, midistats v2 (parts)": ({**AUDIO, "midi": SCORER_MIDI, **TEXT}, {}),
    "text only": (TEXT, {}),
    "MIDI only, pianoroll": ({"midi": "pianoroll:v1"}, {}),
    "MIDI only, pianoroll conv1d": ({"midi": "pianoroll:v1"}, {"tensor_encoder": "conv1d"}),
    "MIDI only, pianoroll chroma": ({"midi": "pianoroll:v1"}, {"tensor_encoder": "chroma"}),
    "MIDI only, pianoroll, batch 32": ({"midi": "pianoroll:v1"}, {"batch_size": 32}),
    "MIDI only, pianoroll chroma, batch 32": ({"midi": "pianoroll:v1"}, {"tensor_encoder": "chroma", "batch_size": 32}),
    "MIDI only, pianoroll v3 (families)": ({"midi": "pianoroll:v3"}, {}),
    "MIDI only, pianoroll v3 (families) chroma": ({"midi": "pianoroll:v3"}, {"tensor_encoder": "chroma"}),
    "MIDI only, midistats v1, batch 32": (MIDISTATS_V1, {"batch_size": 32}),
    "MIDI only, midistats v1 (the scorer preset until 2026-11-30)": (MIDISTATS_V1, {}),
    "MIDI only, midistats v2-instruments (instruments)": ({"midi": "midistats:v2-instruments"}, {}),
    "MIDI only, midistats v2 (parts; = train --preset scorer)": (PRESETS["scorer"].inputs, PRESETS["scorer"].overrides),
    # Two inputs read one MIDI file: statistics (tempo, beat grid, densities) beside a learned roll encoder.
    "MIDI only, midistats v1 + pianoroll chroma": (V1_AND_ROLL, {"tensor_encoder": "chroma"}),
    "MIDI only, midistats v1 + pianoroll cnn2d": (V1_AND_ROLL, {"tensor_encoder": "cnn2d"}),
    # A candidate always brings both, so no training row needs to learn to read one of them alone.
    "MIDI only, midistats v1 + pianoroll chroma, no input dropout": (
        V1_AND_ROLL, {"tensor_encoder": "chroma", "modality_dropout": 0.0, "solo_dropout": 0.0}),
    # Per-sample weights over the two views (FusionConfig.fusion) instead of concatenating them.
    "MIDI only, midistats v1 + pianoroll chroma, gated": (V1_AND_ROLL, {"tensor_encoder": "chroma", "fusion": "gated"}),
    "MIDI only, midistats v2 (parts) + pianoroll chroma": (name_inputs("midi", [SCORER_MIDI, "pianoroll:v1"]),
                                                            {**PRESETS["scorer"].overrides, "tensor_encoder": "chroma"}),
    "MIDI only, midistats v2 (parts) + pianoroll v3 (families) chroma": (
        name_inputs("midi", [SCORER_MIDI, "pianoroll:v3"]), {**PRESETS["scorer"].overrides, "tensor_encoder": "chroma"}),
}
ENCODINGS = (("spectral", "v1", {}, ("audio",)), ("pianoroll", "v1", {}, ("midi",)),
             ("pianoroll", "v3", {"families": True}, ("midi",)),
             ("midistats", "v1", {}, ("midi",)),
             (SCORER_ENCODING.encoder, SCORER_ENCODING.version, SCORER_ENCODING.params, ("midi",)),
             ("midistats", "v2-instruments", {"features": "instruments"}, ("midi",)),
             ("minilm", "v1", {}, ("lyrics", "concept")))
COLUMNS = ("color_acc", "mode_acc", "no_lyrics_color_acc", "no_lyrics_mode_acc", "cand_color_acc",
           "cand_ranking_auc", "color_ece", "cand_color_ece")


def build_store(path: Path, songs: int, seed: int) -> Store:
    store = Store.open(path)
    corpus = store.side_path("corpus", f"synth-{songs}-{seed}.parquet")
    if not corpus.exists():
        write_corpus(SynthConfig(songs=songs, seed=seed), corpus)
    ingest_paths(store, [corpus])
    for encoder, version, params, modalities in ENCODINGS:
        run_encode(store, EncodeConfig(encoder, version, params, modalities=modalities, workers=0))
    return store


def table_row(name: str, summary: dict, seconds: float) -> str:
    cells = [mean_sd_text(summary[k], summary.get(f"{k}_sd")) or "-" for k in COLUMNS]
    return f"| {name} | {' | '.join(cells)} | {summary['collapsed']}/{summary['folds']} | {seconds:.0f} |"


TITLE = "Model quality (synthetic corpus)"
HEADER = ("| model | colour | mode | no-lyrics colour | no-lyrics mode | MIDI-cand colour | MIDI-cand AUC "
          "| ECE | MIDI-cand ECE | collapsed | seconds |\n" + "|---" * 11 + "|")


def section(command: str, setup: str, rows: list[str], notes: str = "") -> str:
    """The BENCHMARKS.md section: what was measured, the table, the command."""
    return "\n".join([
        f"## {TITLE}", "", setup, "",
        "Every number is the mean ± sd over song-grouped folds (no song in two folds' validation rows, "
        "stratified by colour; `compare --folds K`). *MIDI-cand* is the MIDI-candidate view: every validation "
        "row that has MIDI, scored with its MIDI alone (audio, lyrics and concept on the null path), as "
        "`ChromaticScorer` scores a generated candidate; its colour accuracy (chance 0.125), its ranking AUC "
        "(per target colour, ROC-AUC of the chromatic match separating that colour's candidates from the rest, "
        "averaged over colours) and the colour head's expected calibration error (10 bins). *ECE* is the same "
        "calibration error on the full rows. *collapsed*: folds whose model predicts one or two colours, or whose "
        "match hardly moves across rows (fusion/quality.py).", "",
        HEADER, *rows, "", notes, "", f"Command: `{command}`", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--songs", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--only", default=None, help="Regex: only the GRID rows whose name matches.")
    parser.add_argument("--build-only", action="store_true", help="Build and encode the store, train nothing.")
    parser.add_argument("--write", action="store_true", help="Rewrite BENCHMARKS.md's section with the table.")
    parser.add_argument("--reuse", action="store_true",
                        help="Train on the store as built (no ingest/encode), e.g. beside another run on it.")
    args = parser.parse_args()
    store = Store.open(args.store, create=False) if args.reuse else build_store(args.store, args.songs, args.seed)
    if args.build_only:
        return
    base = TrainConfig(epochs=args.epochs, seed=args.seed, threads=1, folds=args.folds, export_onnx=False)
    print(f"{args.songs} songs, {args.folds} song-grouped folds, seed {args.seed}, at most {args.epochs} epochs\n")
    print(HEADER)
    rows = []
    for name, (inputs, overrides) in GRID.items():
        if args.only and not re.search(args.only, name):
            continue
        started = time.perf_counter()
        results = train_folds(store, inputs, replace(base, **overrides))
        summaries = [run_summary(r.metrics) for r in results]
        summary = aggregate(summaries)
        rows.append(table_row(name, summary, time.perf_counter() - started))
        per_fold = ", ".join("-" if s["cand_color_acc"] is None else f"{s['cand_color_acc']:.3f}" for s in summaries)
        print(rows[-1], flush=True)
        print(f"    MIDI-cand colour per fold: {per_fold}", file=sys.stderr, flush=True)
    if args.write:
        setup = (f"`chromatic synth --songs {args.songs} --seed {args.seed}`, {args.folds} folds, seed {args.seed}, "
                 f"at most {args.epochs} epochs (patience 10), one torch thread.")
        # The section's ### studies (MIDI representations, the scorer's features) are written by hand: keep them.
        print(replace_section(TITLE, section(" ".join(["python", *sys.argv]), setup, rows), keep_subsections=True))


if __name__ == "__main__":
    main()
