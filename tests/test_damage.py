"""The damage suite: a deleted table, a truncated data file, a truncated manifest.

Every command that reads the damaged table exits 2 with a message naming it
(never a traceback), and `chromatic doctor` names each defect and how to fix it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from encoders.job import EncodeConfig, run_encode
from featurestore import Store
from fusion.train import TrainConfig, train
from tinydata import build_tiny_store

FEATURE = "midi.midistats.v1"
DAMAGED = ("segments", FEATURE)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    store = build_tiny_store(tmp_path_factory.mktemp("damage") / "store")
    run_encode(store, EncodeConfig("midistats", "v1", workers=0), progress=False)
    run = train(store, {"midi": "midistats:v1"}, TrainConfig(epochs=1, batch_size=16, export_onnx=False, threads=1))
    return Path(store.uri), run.run_id


def damaged_copy(healthy, tmp_path, table: str, damage: str) -> Path:
    source, _ = healthy
    path = tmp_path / "store"
    shutil.copytree(source, path)
    store = Store.open(path, create=False)
    lance_dir = path / f"{table}.lance"
    if damage == "deleted":
        shutil.rmtree(lance_dir)
    elif damage == "data":
        fragment = store.table(table).to_lance().get_fragments()[-1]
        _truncate(lance_dir / "data" / fragment.data_files()[0].path)
    else:  # the latest manifest (Lance numbers them so that the newest sorts first)
        _truncate(sorted((lance_dir / "_versions").glob("*.manifest"))[0])
    return path


def _truncate(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 3)


def commands(run_id: str) -> dict[str, list[str]]:
    return {  # encode last: for a deleted table it is the fix (it re-creates the table)
        "info": ["info"], "versions": ["versions"],
        "neighbors": ["neighbors", "--table", FEATURE, "--segment", "red-song0-seg0"],
        "train": ["train", "--midi", "midistats:v1", "--epochs", "1"], "eval": ["eval", run_id],
        "encode": ["encode", "--encoder", "midistats", "--version", "v1"],
    }


# Nothing to refuse: `info` lists the tables there are and reads a feature table's row count from its
# manifest only, and an empty store when `segments` is gone; `versions` shows "missing table" (or no
# coverage without `segments`); encode
# re-creates a deleted feature table; an unfiltered `neighbors` query reads only the feature table.
DOES_NOT_READ = {("deleted", FEATURE): {"info", "versions", "encode"}, ("data", FEATURE): {"info"},
                 ("deleted", "segments"): {"info", "versions", "neighbors"}}


@pytest.mark.parametrize("damage", ["deleted", "data", "manifest"])
@pytest.mark.parametrize("table", DAMAGED)
def test_every_command_exits_2_naming_the_damaged_table(healthy, tmp_path, table, damage):
    path = damaged_copy(healthy, tmp_path, table, damage)
    runner = CliRunner()
    for name, args in commands(healthy[1]).items():
        done = runner.invoke(app, [*args, "--store", str(path)])
        assert done.exception is None or isinstance(done.exception, SystemExit), (name, done.exception)
        if name in DOES_NOT_READ.get((damage, table), ()):
            assert done.exit_code == 0, (name, done.output)
            continue
        assert done.exit_code == 2, (name, done.output)
        message = " ".join(done.output.split())
        assert table in message, (name, message)
        if damage != "deleted":
            assert "chromatic doctor" in message, (name, message)


@pytest.mark.parametrize("damage", ["deleted", "data", "manifest"])
def test_doctor_names_each_defect_with_its_fix(healthy, tmp_path, damage):
    path = damaged_copy(healthy, tmp_path, FEATURE, damage)
    done = CliRunner().invoke(app, ["doctor", "--store", str(path), "--json"])
    assert done.exit_code == 1, done.output
    report = json.loads(done.output)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert [f["subject"] for f in errors] == [FEATURE]
    assert "chromatic encode --encoder midistats --version v1" in errors[0]["fix"]
    text = CliRunner().invoke(app, ["doctor", "--store", str(path)])
    assert text.exit_code == 1 and FEATURE in text.output and "fix:" in text.output


def test_doctor_on_a_healthy_store_and_fixing_what_loses_nothing(healthy, tmp_path):
    source, run_id = healthy
    path = tmp_path / "store"
    shutil.copytree(source, path)
    runner = CliRunner()
    clean = runner.invoke(app, ["doctor", "--store", str(path), "--json"])
    assert clean.exit_code == 0 and json.loads(clean.output)["errors"] == 0, clean.output
    store = Store.open(path, create=False)
    (store.side_dir / "models" / ".partial-run-x").mkdir()  # a train killed while saving
    store.tag_version(FEATURE, "run-gone", store.version(FEATURE))  # a run deleted by hand
    found = json.loads(runner.invoke(app, ["doctor", "--store", str(path), "--json"]).output)
    assert {f["check"] for f in found["findings"] if f["fixable"]} == {"runs"}
    assert sum(f["fixable"] for f in found["findings"]) == 2
    fixed = runner.invoke(app, ["doctor", "--fix", "--store", str(path), "--json"])
    assert len(json.loads(fixed.output)["fixed"]) == 2
    after = json.loads(runner.invoke(app, ["doctor", "--store", str(path), "--json"]).output)
    assert not any(f["fixable"] for f in after["findings"])
    assert store.tags(FEATURE) == {run_id: store.tags(FEATURE)[run_id]}
