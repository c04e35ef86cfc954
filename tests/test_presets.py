"""`chromatic train --preset scorer`: the documented recipe of the MIDI-candidate scoring model."""

import json

from typer.testing import CliRunner

from cli import app
from encoders.job import EncodeConfig, run_encode
from fusion.presets import PRESETS, SCORER_ENCODING, preset
from fusion.scorer import ChromaticScorer
from tinydata import midi_bytes


def test_train_preset_scorer_trains_the_midi_model_the_scorer_uses(tiny_store):
    enc = SCORER_ENCODING
    run_encode(tiny_store, EncodeConfig(enc.encoder, enc.version, enc.params, workers=0))
    runner = CliRunner()
    done = runner.invoke(app, ["train", "--preset", "scorer", "--epochs", "2", "--store", tiny_store.uri, "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    manifest = json.loads(open(f"{report['run_dir']}/manifest.json").read())
    assert {i["name"]: i["spec"] for i in manifest["inputs"]} == preset("scorer").inputs == {"midi": "midistats:v2"}
    assert report["metrics"]["fitness"]["midi_candidates"]["n"] > 0
    [result] = ChromaticScorer(report["run_dir"]).score_batch([{"midi": midi_bytes([(60, 0, 1, 90)] * 1)}], "Red")
    assert result.error is None and result.inputs == {"midi": True}

    refused = runner.invoke(app, ["train", "--preset", "scorer", "--midi", "pianoroll:v1", "--store", tiny_store.uri])
    assert refused.exit_code == 2 and "--midi" in refused.output
    unknown = runner.invoke(app, ["train", "--preset", "nope", "--store", tiny_store.uri])
    assert unknown.exit_code == 2 and ", ".join(PRESETS) in unknown.output


def test_preset_refuses_a_missing_table_or_other_features_under_its_label(tiny_store):
    runner = CliRunner()
    missing = runner.invoke(app, ["train", "--preset", "scorer", "--epochs", "1", "--store", tiny_store.uri])
    assert missing.exit_code == 2 and SCORER_ENCODING.command in " ".join(missing.output.split())
    run_encode(tiny_store, EncodeConfig("midistats", SCORER_ENCODING.version, {}, workers=0))  # v1's features
    other = runner.invoke(app, ["train", "--preset", "scorer", "--epochs", "1", "--store", tiny_store.uri])
    said = " ".join(other.output.split())  # rich wraps long lines
    assert other.exit_code == 2 and "Traceback" not in said
    assert "'features': 'parts'" in said and "--version v2-scorer --param features=parts" in said
