"""Several inputs reading one modality: input names (`midi`, `midi.pianoroll`), a model fed MIDI statistics
beside a piano roll, its MIDI-candidate view and the scorer feeding a MIDI candidate through both."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from encoders.job import EncodeConfig, run_encode
from featurestore.errors import InputNameError
from featurestore.input_specs import name_inputs, ordered_inputs
from featurestore.schemas import MEDIA, SEGMENTS, input_modality, input_name
from featurestore.taxonomy import DIMENSIONS
from fusion.candidates import chromatic_match, inputs_fed_by
from fusion.compare import combinations
from fusion.layout import MANIFEST, VAL_MIDI_CANDIDATES, VAL_PREDICTIONS
from fusion.metrics import Predictions, subset_masks
from fusion.runs import load_run
from fusion.scorer import ChromaticScorer
from fusion.train import TrainConfig, evaluate_run, train
from tinydata import build_tiny_store

ROLL = {"steps": "32", "resolution_ms": "100"}
BOTH = {"midi.midistats": "midistats:v1", "midi.pianoroll": "pianoroll:v1"}
HEADS = (*DIMENSIONS, "color")


# -- names ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, modality", [("midi", "midi"), ("midi.pianoroll", "midi"),
                                            ("audio.clap-v2", "audio"), ("concept.minilm_v1", "concept")])
def test_an_input_name_is_its_modality_optionally_tagged(name, modality):
    assert input_modality(name) == modality


@pytest.mark.parametrize("name", ["video", "midi.", "midi.a.b", "midi.a b", "", ".pianoroll", "fused.x", "Midi"])
def test_a_bad_input_name_is_refused_listing_the_modalities(name):
    with pytest.raises(InputNameError, match="audio, midi, lyrics, concept.*midi.pianoroll"):
        input_modality(name)


def test_input_name_builds_and_checks_names():
    assert input_name("midi") == "midi" and input_name("midi", "roll") == "midi.roll"
    with pytest.raises(InputNameError):
        input_name("midi", "a.b")


def test_repeated_specs_are_named_after_their_encoder():
    assert name_inputs("midi", ["midistats:v1"]) == {"midi": "midistats:v1"}  # as every run before
    assert name_inputs("midi", ["midistats:v1", "pianoroll:v1|basicpitch:v1"]) == {
        "midi.midistats": "midistats:v1", "midi.pianoroll": "pianoroll:v1|basicpitch:v1"}
    assert list(name_inputs("midi", ["pianoroll:v1", "pianoroll:v2"])) == ["midi.pianoroll-v1", "midi.pianoroll-v2"]
    with pytest.raises(InputNameError, match="cannot be named apart"):
        name_inputs("midi", ["pianoroll:v1", "pianoroll:v1|basicpitch:v1"])
    with pytest.raises(InputNameError, match="valid|audio, midi"):
        name_inputs("video", ["x:v1"])


def test_inputs_are_ordered_by_modality_then_as_given():
    given = {"concept": "c:v1", "midi.pianoroll": "p:v1", "audio": "a:v1", "midi.midistats": "m:v1"}
    assert list(ordered_inputs(given)) == ["audio", "midi.pianoroll", "midi.midistats", "concept"]
    with pytest.raises(InputNameError, match="bad input name 'video'"):
        ordered_inputs({"video": "x:v1"})


def test_compare_grid_takes_tagged_inputs():
    combos = combinations({"midi.pianoroll": ["pianoroll:v1", None], "midi.midistats": ["midistats:v1"]})
    assert combos == [{"midi.pianoroll": "pianoroll:v1", "midi.midistats": "midistats:v1"},
                      {"midi.pianoroll": None, "midi.midistats": "midistats:v1"}]


def test_a_midi_candidate_feeds_every_input_with_a_midi_table():
    reads = {"audio": ("audio",), "midi.midistats": ("midi",), "midi.pianoroll": ("midi", "audio"),
             "midi.basicpitch": ("audio",), "concept": ("concept",)}
    assert inputs_fed_by("midi", reads) == ("midi.midistats", "midi.pianoroll")


def test_subsets_count_a_modality_present_where_any_of_its_inputs_is():
    n = 3
    pred = Predictions(
        segment_ids=np.array(["a", "b", "c"]), song_ids=np.array(["s"] * n), colors=np.array(["Red"] * n),
        probs={h: np.full((n, 9 if h == "color" else 3), 1 / (9 if h == "color" else 3)) for h in HEADS},
        targets={**{d: np.zeros(n, int) for d in DIMENSIONS}, "color": np.zeros(n, int)},
        present={"midi.midistats": np.array([True, False, False]), "midi.pianoroll": np.array([False, True, False]),
                 "audio": np.array([False, False, True])},
    )
    masks = subset_masks(pred)
    assert masks["no_midi"].tolist() == [False, False, True]
    assert masks["midi_only"].tolist() == [True, True, False]
    assert masks["audio_only"].tolist() == [False, False, True]


# -- one model, two MIDI inputs ------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    store = build_tiny_store(tmp_path_factory.mktemp("two-midi") / "store", songs_per_color=2, segments_per_song=2)
    run_encode(store, EncodeConfig("pianoroll", "v1", params=ROLL, workers=0, batch_size=64), progress=False)
    run_encode(store, EncodeConfig("midistats", "v1", workers=0, batch_size=64), progress=False)
    config = TrainConfig(epochs=2, batch_size=8, seed=0, threads=1, tensor_encoder="chroma")
    both = train(store, BOTH, config)
    single = train(store, {"midi": "midistats:v1"}, config)
    return store, both, single


def _rows(store) -> dict[str, dict]:
    media = {r["segment_id"]: r for r in store.read(MEDIA).to_pylist()}
    return {r["segment_id"]: {**r, **media[r["segment_id"]]} for r in store.read(SEGMENTS).to_pylist()}


def test_the_run_records_both_midi_inputs(runs):
    store, both, _ = runs
    manifest = json.loads((both.run_dir / MANIFEST).read_text())
    assert [i["name"] for i in manifest["inputs"]] == list(BOTH)
    assert [[t["table"] for t in i["tables"]] for i in manifest["inputs"]] == [["midi.midistats.v1"],
                                                                              ["midi.pianoroll.v1"]]
    assert manifest["input_names"] == ["midi.midistats_values", "midi.midistats_mask", "midi.pianoroll_values",
                                       "midi.pianoroll_mask"]
    assert load_run(store, both.run_id).inputs == BOTH
    assert {"no_midi", "midi_only"} <= set(both.metrics["subsets"])
    assert evaluate_run(store, both.run_id).metrics == both.metrics


def test_the_midi_candidate_view_keeps_both_midi_inputs(runs):
    store, both, _ = runs
    rows = _rows(store)
    view = pq.read_table(both.run_dir / VAL_MIDI_CANDIDATES).to_pylist()
    full = pq.read_table(both.run_dir / VAL_PREDICTIONS).to_pylist()
    assert view and {v["segment_id"] for v in view} == {
        p["segment_id"] for p in full if p["midi.midistats_mask"] or p["midi.pianoroll_mask"]}
    assert all(rows[v["segment_id"]]["has_midi"] and v["midi.midistats_mask"] and v["midi.pianoroll_mask"]
               for v in view)
    assert both.metrics["fitness"]["midi_candidates"]["n"] == len(view)


def test_scorer_feeds_a_midi_candidate_through_both_inputs_with_the_views_match(runs):
    store, both, _ = runs
    rows = _rows(store)
    view = pq.read_table(both.run_dir / VAL_MIDI_CANDIDATES).to_pylist()
    scorer = ChromaticScorer(both.run_dir)
    results = {r.id: r for r in scorer.score_batch([{"id": v["segment_id"], "midi": rows[v["segment_id"]]["midi"]}
                                                     for v in view], "Green")}
    expected, _ = chromatic_match({h: np.array([v[f"{h}_probs"] for v in view]) for h in HEADS}, "Green")
    for v, match in zip(view, expected):
        result = results[v["segment_id"]]
        assert result.error is None and result.inputs == {"midi.midistats": True, "midi.pianoroll": True}
        assert result.via == {"midi.midistats": "midi.midistats.v1", "midi.pianoroll": "midi.pianoroll.v1"}
        assert result.match == pytest.approx(float(match), abs=1e-5)


def test_a_single_input_run_keeps_its_plain_name_and_scores_as_before(runs):
    store, _, single = runs
    manifest = json.loads((single.run_dir / MANIFEST).read_text())
    assert [i["name"] for i in manifest["inputs"]] == ["midi"]
    assert manifest["input_names"] == ["midi_values", "midi_mask"]
    assert evaluate_run(store, single.run_id).metrics == single.metrics
    view = pq.read_table(single.run_dir / VAL_MIDI_CANDIDATES).to_pylist()
    rows = _rows(store)
    [result] = ChromaticScorer(single.run_dir).score_batch([{"id": "x", "midi": rows[view[0]["segment_id"]]["midi"]}],
                                                            "Red")
    assert result.inputs == {"midi": True} and result.via == {"midi": "midi.midistats.v1"}


def test_cli_frame_names_repeated_midi_inputs_and_refuses_ambiguous_ones(runs, tmp_path):
    from cli import app

    store = runs[0]
    out = tmp_path / "frame.parquet"
    args = ["frame", "--store", str(store.uri), "--midi", "midistats:v1", "--midi", "pianoroll:v1", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    columns = pq.read_schema(out).names
    assert {"midi.midistats", "midi.midistats_mask", "midi.pianoroll", "midi.pianoroll_mask"} <= set(columns)
    twice = CliRunner().invoke(app, ["frame", "--store", str(store.uri), "--midi", "pianoroll:v1", "--midi",
                                     "pianoroll:v1", "--out", str(out)])
    assert twice.exit_code == 2 and "cannot be named apart" in twice.output


def test_cli_compare_takes_one_version_list_per_repeated_option(runs):
    from cli import app

    store = runs[0]
    base = ["compare", "--store", str(store.uri), "--epochs", "1", "--json"]
    result = CliRunner().invoke(app, [*base, "--midi", "midistats:v1", "--midi", "pianoroll:v1,none"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["inputs"] for row in rows] == [BOTH, {"midi.midistats": "midistats:v1"}]
    bad = CliRunner().invoke(app, [*base, "--midi", "none", "--midi", "pianoroll:v1"])
    assert bad.exit_code == 2 and "needs at least one ENCODER:VERSION" in bad.output
