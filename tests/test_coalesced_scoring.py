"""A model trained on `--midi pianoroll:v1|basicpitch:v1`: the run records both tables, and
the scorer routes MIDI candidates through pianoroll and audio-only ones through transcription."""

from __future__ import annotations

import json

import numpy as np
import pytest

from encoders.base import EncoderInput
from encoders.job import EncodeConfig, run_encode
from featurestore.join import input_arrays, join
from featurestore.schemas import MEDIA, SEGMENTS
from fusion.runs import MANIFEST
from fusion.scorer import ChromaticScorer
from fusion.train import TrainConfig, evaluate_run, train
from tinydata import build_tiny_store

GRID = {"steps": "32", "resolution_ms": "100"}
SPEC = "pianoroll:v1|basicpitch:v1"


@pytest.fixture(scope="module")
def coalesced_run(tmp_path_factory):
    store = build_tiny_store(tmp_path_factory.mktemp("coalesced") / "store", songs_per_color=2, segments_per_song=2)
    for encoder in ("pianoroll", "basicpitch"):
        run_encode(store, EncodeConfig(encoder, "v1", params=GRID, workers=0, batch_size=64), progress=False)
    result = train(store, {"midi": SPEC}, TrainConfig(epochs=2, batch_size=8, seed=0, threads=1))
    return store, result


def _rows(store) -> list[dict]:
    media = {r["segment_id"]: r for r in store.read(MEDIA).to_pylist()}
    return [{**r, **media[r["segment_id"]]} for r in store.read(SEGMENTS).to_pylist()]


def test_the_run_records_every_table_and_what_each_filled(coalesced_run):
    store, result = coalesced_run
    rows = _rows(store)
    manifest = json.loads((result.run_dir / MANIFEST).read_text())
    [midi] = manifest["inputs"]
    assert midi["spec"] == SPEC
    assert [t["table"] for t in midi["tables"]] == ["midi.pianoroll.v1", "audio.basicpitch.v1"]
    assert [t["modality"] for t in midi["tables"]] == ["midi", "audio"]
    fills = result.metrics["input_fills"]["midi"]
    audio_only = [r for r in rows if r["has_audio"] and not r["has_midi"]]
    assert fills["audio.basicpitch.v1"]["filled"] == len(audio_only) > 0
    assert sum(fills["audio.basicpitch.v1"]["filled_by_color"].values()) == len(audio_only)
    assert fills["midi.pianoroll.v1"]["filled"] == sum(r["has_midi"] for r in rows)
    assert set(manifest["lance_versions"]) >= {"midi.pianoroll.v1", "audio.basicpitch.v1"}
    evaluated = evaluate_run(store, result.run_id)
    assert evaluated.metrics == result.metrics


def test_scorer_routes_midi_to_the_roll_and_audio_only_to_transcription(coalesced_run):
    store, result = coalesced_run
    rows = _rows(store)
    scorer = ChromaticScorer(result.run_dir)
    with_midi = next(r for r in rows if r["has_midi"] and r["has_audio"])
    audio_only = next(r for r in rows if r["has_audio"] and not r["has_midi"])
    audio = np.asarray(audio_only["audio"], dtype=np.float32)
    both, alone = scorer.score_batch([
        {"id": "both", "midi": with_midi["midi"], "audio": np.asarray(with_midi["audio"], np.float32),
         "sample_rate": with_midi["sample_rate"]},
        {"id": "alone", "audio": audio, "sample_rate": audio_only["sample_rate"]},
    ])
    by_id = {r.id: r for r in (both, alone)}
    assert by_id["both"].via == {"midi": "midi.pianoroll.v1"} and by_id["both"].error is None
    assert by_id["alone"].via == {"midi": "audio.basicpitch.v1"} and by_id["alone"].error is None
    assert by_id["alone"].inputs == {"midi": True} and by_id["alone"].unused == ()
    # The scorer's transcription is the stored one: same encoder, same vector.
    [fresh] = scorer.encoder("midi", 1).encode(
        [EncoderInput("x", audio=audio, sample_rate=audio_only["sample_rate"])], "audio"
    )
    joined = join(store, {"midi": SPEC})
    index = joined.table.column("segment_id").to_pylist().index(audio_only["segment_id"])
    np.testing.assert_array_equal(input_arrays(joined, "midi", np.float16).values[index], fresh)


def test_a_candidate_with_nothing_the_input_reads_fails_clearly(coalesced_run):
    _, result = coalesced_run
    [only_lyrics] = ChromaticScorer(result.run_dir).score_batch([{"id": "words", "lyrics": "red words"}])
    assert only_lyrics.error is not None and "gives none of the inputs" in only_lyrics.error
    assert only_lyrics.unused == ("lyrics",)
