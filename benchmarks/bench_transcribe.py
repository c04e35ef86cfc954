"""Transcription as a MIDI input: accuracy, coverage, a model compare, throughput, scorer latency.

On a small synthetic store (its audio is rendered from its own MIDI, so the truth is known):

1. `basicpitch:v1` encode throughput (the whole job, segments/s and audio seconds/s);
2. transcription accuracy per colour on every segment that has both audio and MIDI:
   frame-level F of the stored 100 ms roll (on at posterior >= 0.5) against the true
   pianoroll (binary), and note-onset F (mir_eval, 50 ms, pitch must match) of notes
   read off a 20 ms roll of the same network pass (runs >= 40 ms) against the true notes;
3. MIDI-input coverage before/after coalescing, per colour;
4. `--midi pianoroll:v1` vs `--midi pianoroll:v1|basicpitch:v1` trained on one song split
   (several seeds), validation accuracy on all rows, and colour accuracy of MIDI-only and
   audio-only candidates from songs of an unseen seed;
5. scorer latency for 50 audio-only 10 s candidates through the coalesced model (and
   50 MIDI candidates for scale).

    .venv/bin/python benchmarks/bench_transcribe.py --store /tmp/transcribe --songs 27 --write
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from benchmd import replace_section  # noqa: E402

from encoders.base import EncoderInput  # noqa: E402
from encoders.basicpitch import posterior_roll, run_network, unwrap  # noqa: E402
from encoders.job import EncodeConfig, run_encode  # noqa: E402
from encoders.media import decode_midi, note_table  # noqa: E402
from encoders.pianoroll import PianoRollConfig, render_roll  # noqa: E402
from encoders.registry import build_encoder  # noqa: E402
from encoders.transcription import Counts, frame_counts, onset_counts, roll_notes  # noqa: E402
from featurestore.coverage import coalesced_coverage  # noqa: E402
from featurestore.ingest import ingest_paths  # noqa: E402
from featurestore.store import Store  # noqa: E402
from synth import SynthConfig, write_corpus  # noqa: E402
from featurestore.taxonomy import COLORS  # noqa: E402
from fusion.scorer import ChromaticScorer  # noqa: E402
from fusion.train import TrainConfig, train  # noqa: E402

SECTION_TITLE = "Transcription as a MIDI input (basicpitch)"
PLAIN, COALESCED = "pianoroll:v1", "pianoroll:v1|basicpitch:v1"
ONSET_GRID_MS, ONSET_MIN_STEPS = 20.0, 2
CANDIDATE_SECONDS = 10.0


def build_store(path: Path, songs: int, seed: int, max_seconds: float) -> tuple[Store, Path, dict]:
    store = Store.open(path)
    corpus = store.side_path("corpus", f"synth-{songs}-{seed}-{max_seconds:g}.parquet")
    if not corpus.exists():
        write_corpus(SynthConfig(songs=songs, seed=seed, max_seconds=max_seconds), corpus)
    ingest_paths(store, [corpus])
    run_encode(store, EncodeConfig("pianoroll", "v1", workers=0), progress=False)
    cpu = time.process_time()
    summary = run_encode(store, EncodeConfig("basicpitch", "v1", workers=0, batch_size=8), progress=False)
    return store, corpus, {**summary.tables[0].to_dict(), "cpu_seconds": time.process_time() - cpu}


def accuracy(corpus: Path) -> dict[str, dict[str, Counts]]:
    """Per colour (and "all"): frame counts on the stored grid, onset counts on a fine grid."""
    encoder = build_encoder("basicpitch")
    fine = build_encoder("basicpitch", {"resolution_ms": str(ONSET_GRID_MS), "steps": "2000"}).config
    truth_grid = PianoRollConfig(velocity="binary")
    totals: dict[str, dict[str, Counts]] = defaultdict(lambda: {"frame": Counts(), "onset": Counts()})
    columns = ["rainbow_color", "audio_waveform", "audio_sample_rate", "midi_binary"]
    for batch in pq.ParquetFile(corpus).iter_batches(batch_size=16, columns=columns):
        for row in batch.to_pylist():
            if not row["audio_waveform"] or not row["midi_binary"]:
                continue
            audio = np.frombuffer(row["audio_waveform"], "<f4")
            prepared = encoder.prepare(EncoderInput("x", audio=audio, sample_rate=row["audio_sample_rate"]), "audio")
            frames = unwrap(run_network(encoder.session(), prepared.windows), prepared.samples)
            truth = note_table(decode_midi(row["midi_binary"]))
            frame = frame_counts(render_roll(truth, truth_grid), posterior_roll(frames, encoder.config))
            intervals, pitches = roll_notes(posterior_roll(frames, fine), ONSET_GRID_MS, min_steps=ONSET_MIN_STEPS)
            onset = onset_counts(np.stack([truth.start_s, truth.end_s], 1), truth.pitch, intervals, pitches)
            for key in (row["rainbow_color"], "all"):
                totals[key] = {"frame": totals[key]["frame"].plus(frame), "onset": totals[key]["onset"].plus(onset)}
    return dict(totals)


def candidates(store: Store, seed: int) -> tuple[list[dict], list[dict]]:
    """(MIDI-only, audio-only) candidates: one of each per song of an unseen seed, with the true colour."""
    out = store.side_path("corpus", f"candidates-{seed}.parquet")
    if not out.exists():
        write_corpus(SynthConfig(songs=27, seed=seed, segments_per_song=(2, 3), min_seconds=8, max_seconds=12), out)
    rows = pq.read_table(out).to_pylist()
    midi, audio, seen_midi, seen_audio = [], [], set(), set()
    for row in rows:
        song = row["song_id"]
        if row["midi_binary"] and song not in seen_midi:
            seen_midi.add(song)
            midi.append({"id": row["segment_id"], "color": row["rainbow_color"], "midi": row["midi_binary"]})
        if row["audio_waveform"] and song not in seen_audio:
            seen_audio.add(song)
            wave = np.frombuffer(row["audio_waveform"], "<f4")
            audio.append({"id": row["segment_id"], "color": row["rainbow_color"], "audio": wave,
                          "sample_rate": row["audio_sample_rate"]})
    return midi, audio


def candidate_accuracy(scorer: ChromaticScorer, picked: list[dict]) -> float | None:
    results = scorer.score_batch([{k: v for k, v in c.items() if k != "color"} for c in picked])
    scored = [r for r in results if r.error is None]
    if not scored:
        return None
    truth = {c["id"]: c["color"] for c in picked}
    return float(np.mean([truth[r.id] == r.predicted_color for r in scored]))


def compare(store: Store, args, midi: list[dict], audio: list[dict]) -> dict:
    out: dict[str, list[dict]] = {PLAIN: [], COALESCED: []}
    for seed in args.seeds:
        for spec in out:
            config = TrainConfig(epochs=args.epochs, seed=seed, threads=1, patience=args.patience)
            result = train(store, {"midi": spec}, config)
            scorer = ChromaticScorer(result.run_dir)
            overall = result.metrics["overall"]
            out[spec].append({
                "seed": seed, "run_id": result.run_id, "val_n": overall["n"], "color_acc": overall["color_acc"],
                "mode_acc": overall["mode_acc"], "midi_cand": candidate_accuracy(scorer, midi),
                "audio_cand": candidate_accuracy(scorer, audio),
            })
            print(spec, out[spec][-1], flush=True)
    return out


def latency(run_dir: Path, audio: list[dict], midi: list[dict]) -> dict:
    """(wall, CPU) seconds of score_batch on 50 audio-only 10 s candidates (once: it is long), and on
    50 MIDI candidates (median of 3). CPU time is this process's: on a shared box wall time mostly
    measures the queue for a core."""
    scorer = ChromaticScorer(run_dir)
    need = int(CANDIDATE_SECONDS * audio[0]["sample_rate"])
    batch = [{"id": f"a{i}", "audio": np.resize(c["audio"], need), "sample_rate": c["sample_rate"]}
             for i, c in enumerate(audio[i % len(audio)] for i in range(50))]
    midi_batch = [{"id": f"m{i}", "midi": midi[i % len(midi)]["midi"]} for i in range(50)]
    timings = {}
    for name, items, runs in (("audio", batch, 1), ("midi", midi_batch, 3)):
        scorer.score_batch(items[:2])  # warm: session and encoders built
        seconds = []
        for _ in range(runs):
            started, cpu = time.perf_counter(), time.process_time()
            results = scorer.score_batch(items)
            seconds.append((time.perf_counter() - started, time.process_time() - cpu))
        assert all(r.error is None for r in results), [r.error for r in results if r.error][:1]
        timings[name] = sorted(seconds)[len(seconds) // 2]
    return timings


def pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def markdown(args, encode: dict, acc: dict, pairs: list[dict], runs: dict, timing: dict) -> str:
    colors = [c for c in COLORS if c in acc] + ["all"]
    lines = [
        f"## {SECTION_TITLE}", "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} CPUs shared with other "
        "work (numbers are noisy; compare within the section). Command: `.venv/bin/python "
        f"benchmarks/bench_transcribe.py --store DIR --songs {args.songs} --max-seconds {args.max_seconds:g} "
        f"--epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))} --write`. Synthetic store: "
        f"{args.songs} songs, segments 5-{args.max_seconds:g} s. The network is basic-pitch 0.4.0's bundled "
        "`nmp.onnx` run with onnxruntime; tests/test_basicpitch.py holds its posteriors equal to basic-pitch's "
        "own `run_inference` (largest difference 6e-8 on a synthetic clip).", "",
        "### Encode throughput (`basicpitch:v1`, whole job, workers 0)", "",
        "| segments | with audio | wall s | segments/s (wall) | CPU s | segments/s (CPU) | in the network s |",
        "|---|---|---|---|---|---|---|",
        f"| {encode['pending']} | {encode['encoded']} | {encode['seconds']:.1f} | {encode['segments_per_s']:.2f} | "
        f"{encode['cpu_seconds']:.1f} | {encode['pending'] / encode['cpu_seconds']:.2f} | "
        f"{encode['model_seconds']:.1f} |", "",
        "### Accuracy against the true MIDI (segments with audio and MIDI)", "",
        "Frame F: the stored 100 ms roll, on at posterior >= 0.5, against the true roll (binary). Note-onset F: "
        f"mir_eval, 50 ms onset tolerance, pitch must match, offsets ignored; notes are runs >= "
        f"{ONSET_GRID_MS * ONSET_MIN_STEPS:g} ms of a {ONSET_GRID_MS:g} ms roll from the same network pass.", "",
        "| colour | frame P / R / F | onset P / R / F | true notes |", "|---|---|---|---|",
    ]
    for color in colors:
        frame, onset = acc[color]["frame"].f_measure(), acc[color]["onset"].f_measure()
        lines.append(
            f"| {color} | {frame['precision']:.2f} / {frame['recall']:.2f} / **{frame['f']:.2f}** | "
            f"{onset['precision']:.2f} / {onset['recall']:.2f} / **{onset['f']:.2f}** | "
            f"{acc[color]['onset'].tp + acc[color]['onset'].fn} |"
        )
    lines += ["", "### MIDI-input coverage before -> after coalescing (% of segments)", ""]
    for pair in pairs:
        before, after = pair["before"], pair["after"]
        names = list(before["coverage_pct_by_color"])
        lines += [f"`--midi {pair['spec']}`: {pair['gained']} segments gain a MIDI input.", "",
                  "| | " + " | ".join(names) + " | all |", "|---|" + "---|" * (len(names) + 1),
                  "| before | " + " | ".join(f"{before['coverage_pct_by_color'][c]:.0f}" for c in names)
                  + f" | {before['coverage_pct']:.0f} |",
                  "| after | " + " | ".join(f"{after['coverage_pct_by_color'][c]:.0f}" for c in names)
                  + f" | {after['coverage_pct']:.0f} |", ""]
    lines += compare_lines(args, runs)
    lines += [
        "", "### Scorer latency (coalesced model, one batch of 50, warm)", "",
        "CPU is this process's time; wall time on this shared box is mostly waiting for a core.", "",
        "| candidates | wall s | CPU s | CPU ms / candidate |", "|---|---|---|---|",
    ]
    for name, label in (("audio", "50 audio-only, 10 s each (via basicpitch), 1 run"),
                        ("midi", "50 MIDI (via pianoroll), median of 3")):
        wall, cpu = timing[name]
        lines.append(f"| {label} | {wall:.2f} | {cpu:.2f} | {1000 * cpu / 50:.0f} |")
    return "\n".join(lines) + "\n"


def compare_lines(args, runs: dict) -> list[str]:
    def mean(spec, key):
        values = [r[key] for r in runs[spec] if r[key] is not None]
        return (statistics.mean(values), min(values), max(values)) if values else None

    def cell(stat):
        return "-" if stat is None else f"{100 * stat[0]:.1f} ({100 * stat[1]:.1f}-{100 * stat[2]:.1f})"

    lines = [
        f"### `--midi {PLAIN}` vs `--midi {COALESCED}`", "",
        f"One song split per seed ({', '.join(map(str, args.seeds))}; the 5-fold compare of issue 13 had not "
        f"landed), at most {args.epochs} epochs (early stop after {args.patience} without a better validation "
        "score), MIDI input only. Validation rows are all segments of the validation "
        "songs (rows with no MIDI input take the null path). Candidates: one MIDI-only and one audio-only "
        "segment per song of an unseen seed, scored with no target; accuracy = predicted colour is the true "
        "one. Mean (min-max) over seeds, %.", "",
        "| input | val colour acc | val mode acc | MIDI candidates colour acc | audio-only candidates colour acc |",
        "|---|---|---|---|---|",
    ]
    for spec in (PLAIN, COALESCED):
        lines.append(f"| `{spec.replace('|', chr(92) + '|')}` | {cell(mean(spec, 'color_acc'))} | {cell(mean(spec, 'mode_acc'))} | "
                     f"{cell(mean(spec, 'midi_cand'))} | {cell(mean(spec, 'audio_cand'))} |")
    lines.append("")
    lines.append("`-`: the plain model cannot score audio-only candidates (they give none of its inputs).")
    return lines


def main() -> None:
    global PLAIN, COALESCED  # --specs replaces the pair the compare trains
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--songs", type=int, default=27)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=15.0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--patience", type=int, default=TrainConfig.patience)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--compare-only", action="store_true",
                        help="only the model compare, on a store a full run built; prints its table")
    parser.add_argument("--specs", nargs=2, metavar=("PLAIN", "COALESCED"), default=[PLAIN, COALESCED],
                        help="with --compare-only: the two --midi specs (their tables must be encoded)")
    args = parser.parse_args()
    if args.compare_only:
        PLAIN, COALESCED = args.specs
        store = Store.open(args.store)
        runs = compare(store, args, *candidates(store, args.seed + 1000))
        print("\n".join(compare_lines(args, runs)))
        return
    store, corpus, encode = build_store(args.store, args.songs, args.seed, args.max_seconds)
    print("encode", encode, flush=True)
    acc = accuracy(corpus)
    print({c: {k: v.f_measure()["f"] for k, v in a.items()} for c, a in acc.items()}, flush=True)
    pairs = [p for p in coalesced_coverage(store) if p["spec"] == COALESCED]
    midi, audio = candidates(store, args.seed + 1000)
    runs = compare(store, args, midi, audio)
    coalesced_run = store.side_dir / "models" / runs[COALESCED][-1]["run_id"]
    timing = latency(coalesced_run, audio, midi)
    text = markdown(args, encode, acc, pairs, runs, timing)
    print(text)
    if args.write:
        replace_section(SECTION_TITLE, text)


if __name__ == "__main__":
    main()
