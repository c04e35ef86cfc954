"""The main job end to end on the synthetic corpus, with no downloads.

synth -> ingest -> encode (weight-free + bundled MiniLM) -> train (all inputs and
text-only, same split) -> train the scorer preset (fusion/presets.py) -> score
held-out MIDI candidates with it -> neighbours in a colour.

`run_demo` is a generator of typed steps (below) so the CLI decides how to print;
every step is idempotent, so re-running the demo on the same store resumes
(re-ingest changes nothing, encoders encode nothing new) and trains fresh runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow.parquet as pq

from encoders.job import EncodeConfig, EncodeProgressFn, EncodeSummary, run_encode
from featurestore.errors import StoreError
from featurestore.feature_table import PRESENT
from featurestore.info import store_info
from featurestore.ingest import IngestSummary, ingest_paths
from featurestore.search import Neighbor, neighbors
from featurestore.store import Store
from featurestore.taxonomy import canonical_color
from fusion.candidates import ScoreResult
from fusion.compare import compare
from fusion.presets import PRESETS, SCORER_ENCODING, SCORER_MIDI
from fusion.train import TrainConfig, TrainResult, train
from synth import SynthConfig, SynthSummary, write_corpus

# (encoder, version, params, modalities): what the offline pipeline stores.
DEMO_ENCODINGS: tuple[tuple[str, str, dict, tuple[str, ...]], ...] = (
    ("spectral", "v1", {}, ("audio",)),
    ("pianoroll", "v1", {}, ("midi",)),
    (SCORER_ENCODING.encoder, SCORER_ENCODING.version, SCORER_ENCODING.params, ("midi",)),
    ("minilm", "v1", {}, ("lyrics", "concept")),
)
# midistats, not pianoroll, is the demo's MIDI input: on the small synthetic corpus it
# generalises across songs better (see BENCHMARKS.md, "Model quality").
ALL_INPUTS = {"audio": "spectral:v1", "midi": SCORER_MIDI, "lyrics": "minilm:v1", "concept": "minilm:v1"}
# Ingest records the corpus file name as each segment's `source`.
DEMO_SOURCE_PREFIX = "synth-"


@dataclass(frozen=True)
class DemoConfig:
    songs: int = 40
    seed: int = 0
    epochs: int = 40
    target: str = "Green"
    candidates: int = 8  # synthetic candidate songs (held-out seed) scored against the target

    def __post_init__(self):
        object.__setattr__(self, "target", canonical_color(self.target))


# -- the steps, in the order they come ----------------------------------------------
@dataclass(frozen=True)
class SynthStep:
    summary: SynthSummary


@dataclass(frozen=True)
class IngestStep:
    summary: IngestSummary


@dataclass(frozen=True)
class InfoStep:
    info: dict  # featurestore.info.store_info


@dataclass(frozen=True)
class EncodeStep:
    summary: EncodeSummary


@dataclass(frozen=True)
class CompareStep:
    rows: list[dict]  # fusion.compare rows


@dataclass(frozen=True)
class RunStep:
    row: dict  # the compare row of the all-inputs model


@dataclass(frozen=True)
class ScorerStep:
    result: TrainResult  # the `train --preset scorer` run the candidates are scored with


@dataclass(frozen=True)
class ScoreStep:
    target: str
    run_id: str  # the scorer preset's run
    results: list[ScoreResult]  # ranked
    truth: dict[str, str]  # candidate id -> its true colour


@dataclass(frozen=True)
class NeighborsStep:
    table: str
    query: str
    color: str
    neighbors: list[Neighbor]


DemoStep = (SynthStep | IngestStep | InfoStep | EncodeStep | CompareStep | RunStep | ScorerStep | ScoreStep
            | NeighborsStep)
# Opens a progress display for one encode job (e.g. render.encode_progress).
EncodeProgressDisplay = Callable[[], AbstractContextManager[EncodeProgressFn]]


def run_demo(store: Store, config: DemoConfig, encode_progress: EncodeProgressDisplay | None = None
             ) -> Iterator[DemoStep]:
    refuse_stores_with_other_data(store)
    corpus = _corpus_path(store, config)
    if not corpus.exists():
        yield SynthStep(write_corpus(SynthConfig(songs=config.songs, seed=config.seed), corpus))
    yield IngestStep(ingest_paths(store, [corpus]))
    yield InfoStep(store_info(store))
    for encoder, version, params, modalities in DEMO_ENCODINGS:
        job = EncodeConfig(encoder, version, params, modalities=modalities)
        with encode_progress() if encode_progress else nullcontext() as progress:
            summary = run_encode(store, job, progress=progress)
        yield EncodeStep(summary)
    train_config = TrainConfig(epochs=config.epochs, seed=config.seed, threads=1)
    rows = compare(store, _grid(), train_config)
    yield CompareStep(rows)
    best = next((r for r in rows if r["status"] == "ok" and r["inputs"] == ALL_INPUTS), None)
    if best is not None:
        yield RunStep(best)
    scorer = PRESETS["scorer"]
    scorer_run = train(store, scorer.inputs, replace(train_config, **scorer.overrides))
    yield ScorerStep(scorer_run)
    yield score_candidates(scorer_run.run_dir, config)
    yield neighbours_of_one_segment(store, config)


def refuse_stores_with_other_data(store: Store) -> None:
    """The demo writes synthetic segments; never mix them into a store of real songs."""
    if not store.has_table("segments"):
        return
    other = store.count("segments", f"source IS NULL OR source NOT LIKE '{DEMO_SOURCE_PREFIX}%'")
    if other:
        raise StoreError(
            f"store {store.uri} already holds {other} segments that the demo did not write; the demo adds "
            f"synthetic songs and trains on everything in the store. Run it on its own store: "
            f"chromatic demo --store ./demo-store"
        )


def _corpus_path(store: Store, config: DemoConfig) -> Path:
    return store.side_path("corpus", f"{DEMO_SOURCE_PREFIX}{config.songs}songs-seed{config.seed}.parquet")


def _grid() -> dict[str, list[str | None]]:
    """All inputs vs text only, trained on the same split: the two rows of the README table."""
    return {
        "audio": [ALL_INPUTS["audio"], None],
        "midi": [ALL_INPUTS["midi"], None],
        "lyrics": [ALL_INPUTS["lyrics"]],
        "concept": [ALL_INPUTS["concept"]],
    }


def candidate_midis(config: DemoConfig, workdir: Path) -> list[tuple[str, str, bytes]]:
    """(id, true colour, MIDI bytes) of songs the model never saw (another seed)."""
    out = workdir / f"candidates-seed{config.seed + 1000}.parquet"
    if not out.exists():
        write_corpus(
            SynthConfig(songs=config.candidates * 2, seed=config.seed + 1000, segments_per_song=(2, 3),
                        min_seconds=8.0, max_seconds=12.0),
            out,
        )
    table = pq.read_table(out, columns=["segment_id", "rainbow_color", "midi_binary"])
    seen, picks = set(), []
    for row in table.to_pylist():
        if row["midi_binary"] and row["segment_id"].split("_")[0] not in seen:
            seen.add(row["segment_id"].split("_")[0])
            picks.append((row["segment_id"], row["rainbow_color"], row["midi_binary"]))
    return picks[: config.candidates]


def score_candidates(run_dir: Path, config: DemoConfig) -> ScoreStep:
    """Rank held-out synthetic MIDI candidates against the target colour, each candidate MIDI alone."""
    from fusion.scorer import ChromaticScorer

    picks = candidate_midis(config, Path(run_dir).parent.parent / "corpus")
    scorer = ChromaticScorer(run_dir)
    results = scorer.score_batch([{"id": cid, "midi": midi} for cid, _, midi in picks], target=config.target)
    truth = {cid: color for cid, color, _ in picks}
    return ScoreStep(config.target, scorer.run_id, results, truth)


def neighbours_of_one_segment(store: Store, config: DemoConfig, k: int = 5) -> NeighborsStep:
    """Nearest segments to one target-colour segment, within its colour, in the audio space."""
    from featurestore.store import sql_quote

    table = "audio." + ALL_INPUTS["audio"].replace(":", ".")
    present = store.read(table, ["segment_id"], where=PRESENT).column("segment_id").to_pylist()
    of_color = store.read(
        "segments", ["segment_id"], where=f"color = {sql_quote(config.target)}"
    ).column("segment_id").to_pylist()
    query = sorted(set(present) & set(of_color))[0]
    hits = neighbors(store, table, query, k=k, colors=(config.target,))
    return NeighborsStep(table, query, config.target, hits)
