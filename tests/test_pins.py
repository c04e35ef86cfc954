"""Runs pin their data: tagged versions survive cleanup, a re-created table is detected, no half runs."""

import json
from datetime import timedelta

import pytest

from fusion.errors import ModelError
from featurestore.maintenance import OptimizeConfig, optimize_store, parse_duration
from featurestore.registry import list_model_records
from featurestore.schemas import SEGMENTS
from fusion import runs as runs_module
from fusion.train import TrainConfig, evaluate_run, train
from test_fusion import INPUTS, feature_store  # noqa: F401 - fixture
from test_join import colour_vectors, write_feature_table

CONFIG = TrainConfig(epochs=2, batch_size=16, seed=0, export_onnx=False, threads=1)


def test_run_tags_the_versions_it_read_and_cleanup_keeps_them(feature_store):  # noqa: F811
    result = train(feature_store, INPUTS, CONFIG)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    for table, version in manifest["lance_versions"].items():
        assert feature_store.tags(table)[result.run_id] == version
        assert manifest["table_identities"][table] == feature_store.identity(table) is not None
    for seed in (5, 6):  # later versions of a table the run read
        write_feature_table(feature_store, "audio", "fake:v1", colour_vectors(feature_store, (12,), seed=seed), (12,))
    report = optimize_store(feature_store, OptimizeConfig(older_than=timedelta(0)))
    audio = next(t for t in report.tables if t.table == "audio.fake.v1")
    assert audio.versions_after < audio.versions_before  # untagged old versions went
    assert evaluate_run(feature_store, result.run_id).metrics == result.metrics  # the tagged one stayed


def test_eval_detects_a_table_deleted_and_re_created(feature_store):  # noqa: F811
    result = train(feature_store, INPUTS, CONFIG)
    feature_store.drop_table("audio.fake.v1")
    for seed in (7, 8, 9, 10):  # enough commits to reach the recorded version number again
        write_feature_table(feature_store, "audio", "fake:v1", colour_vectors(feature_store, (12,), seed=seed), (12,))
    with pytest.raises(ModelError, match="deleted and re-created after run"):
        evaluate_run(feature_store, result.run_id)


def test_interrupted_save_leaves_no_run_no_directory_and_no_tags(feature_store, monkeypatch):  # noqa: F811
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs_module, "write_report", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(feature_store, INPUTS, CONFIG)
    assert list_model_records(feature_store) == []
    assert not any((feature_store.side_dir / "models").iterdir())
    assert all(not feature_store.tags(t) for t in (SEGMENTS, "audio.fake.v1", "midi.roll.v1"))


def test_durations_parse_or_say_how():
    assert parse_duration("7d") == timedelta(days=7) and parse_duration("0s") == timedelta(0)
    with pytest.raises(Exception, match="e.g. 7d"):
        parse_duration("soon")


def test_cli_optimize_reports_each_table(feature_store):  # noqa: F811
    from typer.testing import CliRunner

    from cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["optimize", "--older-than", "0s", "--store", feature_store.uri, "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert {t["table"] for t in report["tables"]} == set(feature_store.table_names())
    assert all(t["versions_after"] == 1 for t in report["tables"])  # no run pins anything yet
    bad = runner.invoke(app, ["optimize", "--older-than", "soon", "--store", feature_store.uri])
    assert bad.exit_code == 2 and "e.g. 7d" in bad.output


def test_optimize_leaves_a_table_being_written_alone(feature_store):  # noqa: F811
    with feature_store.writer(SEGMENTS):  # another job writing it
        report = optimize_store(feature_store, OptimizeConfig(older_than=timedelta(0)))
    assert report.busy == [SEGMENTS]
    assert SEGMENTS not in {t.table for t in report.tables} and len(report.tables) == len(feature_store.table_names()) - 1
