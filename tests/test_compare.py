import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from featurestore.errors import ModelError, StoreError, TableNotFoundError
from featurestore.registry import EncoderRecord, put_encoder_record
from featurestore.schemas import SEGMENTS, FeatureTableName, feature_schema
from featurestore.taxonomy import COLORS
from fusion.compare import COMPARE_COLUMNS, combination_label, combinations, compare
from fusion.train import TrainConfig

DIM = 8


def write_feature_table(store, modality: str, spec: str, present_column: str | None, seed: int,
                        spread: float = 1.0) -> None:
    """A registered vector table: one colour centroid per colour plus noise, times `spread` (0: every vector
    the same); absent where the segment lacks it."""
    name = FeatureTableName.from_spec(modality, spec)
    segments = store.read(SEGMENTS, ["segment_id", "color", present_column or "segment_id"]).to_pylist()
    rng = np.random.default_rng(seed)
    centroids = {color: rng.standard_normal(DIM) for color in COLORS}
    rows = []
    for segment in segments:
        present = bool(segment[present_column]) if present_column else True
        vector = (spread * (centroids[segment["color"]] + 0.3 * rng.standard_normal(DIM))).astype(np.float32)
        rows.append(dict(segment_id=segment["segment_id"], vector=vector.tolist() if present else None,
                         present=present, status=None if present else "absent", encoded_at=None))
    schema = feature_schema((DIM,))
    store.ensure_table(str(name), schema)
    store.upsert(str(name), pa.Table.from_pylist(rows, schema=schema))
    n_present = sum(r["present"] for r in rows)
    put_encoder_record(store, EncoderRecord(
        table_name=str(name), modality=modality, encoder=name.encoder, version=name.version, kind="vector",
        shape=(DIM,), dtype="float32", params=json.dumps({"seed": seed}), model_id=None, weights_fingerprint=None,
        fingerprint=f"test-{name}-{seed}", code_version="test", state="complete", rows=len(rows),
        present=n_present, absent=len(rows) - n_present,
    ))


def validation_songs(run_dir) -> set[str]:
    """The validation songs a run recorded in its manifest."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return set(manifest["split"]["val_songs"])


def test_combinations_skip_the_empty_one_and_label_every_input():
    grid = {"midi": ["roll:v1"], "audio": ["clap:v1", None], "lyrics": [None]}
    combos = combinations(grid)
    assert [combination_label(c) for c in combos] == [
        "audio=clap:v1 midi=roll:v1 lyrics=none",
        "audio=none midi=roll:v1 lyrics=none",
    ]
    assert combinations({"audio": [None, "clap:v1"]}) == [{"audio": "clap:v1"}]


@pytest.mark.parametrize(
    "grid, error",
    [
        ({"video": ["x:v1"]}, ModelError),
        ({"audio": []}, ModelError),
        ({"audio": [None]}, ModelError),
        ({"audio": ["clap"]}, StoreError),
    ],
)
def test_bad_grids_are_refused(grid, error):
    with pytest.raises(error):
        combinations(grid)


def test_missing_table_fails_before_any_training(tiny_store):
    write_feature_table(tiny_store, "audio", "rand:v1", "has_audio", seed=1)
    with pytest.raises(TableNotFoundError, match="audio.rand.v9"):
        compare(tiny_store, {"audio": ["rand:v1", "rand:v9"]}, TrainConfig(epochs=1))


def test_compare_trains_each_combination_on_the_same_split(tiny_store):
    write_feature_table(tiny_store, "audio", "rand:v1", "has_audio", seed=1)
    write_feature_table(tiny_store, "lyrics", "rand:v1", "has_lyrics", seed=2)
    events = []
    grid = {"audio": ["rand:v1", None], "lyrics": ["rand:v1", None]}
    rows = compare(tiny_store, grid, TrainConfig(epochs=2, batch_size=16, seed=3), progress=events.append)

    assert [row["combination"] for row in rows] == [
        "audio=rand:v1 lyrics=rand:v1", "audio=rand:v1 lyrics=none", "audio=none lyrics=rand:v1"]
    assert rows[2]["inputs"] == {"lyrics": "rand:v1"}
    for row in rows:
        assert row["status"] == "ok"
        assert set(COMPARE_COLUMNS) <= set(row)
        assert row["n"] > 0 and 0.0 <= row["color_acc"] <= 1.0
        assert row["no_lyrics_n"] > 0  # Green is instrumental in the tiny store
    # The no-lyrics rows are the segments without lyrics, even for the model without a lyrics input.
    assert len({row["no_lyrics_n"] for row in rows}) == 1
    assert len({row["run_id"] for row in rows}) == 3
    assert [e["index"] for e in events if e["stage"] == "done"] == [1, 2, 3]
    assert any(e["stage"] == "epoch" for e in events)

    first, *others = (validation_songs(Path(row["run_dir"])) for row in rows)
    assert first and all(other == first for other in others)
    assert len({row["n"] for row in rows}) == 1  # same validation segments, whatever the inputs


def test_compare_with_folds_reports_mean_and_sd_over_disjoint_song_folds(tiny_store):
    write_feature_table(tiny_store, "audio", "rand:v1", "has_audio", seed=1)
    write_feature_table(tiny_store, "midi", "rand:v1", "has_midi", seed=4)
    grid = {"audio": ["rand:v1", None], "midi": ["rand:v1"]}
    rows = compare(tiny_store, grid, TrainConfig(epochs=2, batch_size=16, seed=3, folds=2, export_onnx=False))

    for row in rows:
        assert row["status"] == "ok" and row["folds"] == 2 and len(row["run_ids"]) == 2
        assert row["color_acc_sd"] is not None and row["cand_color_acc"] is not None
        assert 0.0 <= row["cand_ranking_auc"] <= 1.0 and row["cand_color_ece"] >= 0.0
        folds = [validation_songs(Path(d)) for d in row["run_dirs"]]
        assert not folds[0] & folds[1]
        assert folds[0] | folds[1] == set(tiny_store.read(SEGMENTS, ["song_id"]).column("song_id").to_pylist())
        assert row["n"] == tiny_store.count(SEGMENTS)  # every segment validated once over the folds
    midi_rows = tiny_store.count(SEGMENTS, "has_midi = true")
    assert {row["cand_n"] for row in rows} == {midi_rows}  # MIDI candidates: every row with MIDI, whatever else


def test_cli_flags_a_collapsed_model_in_train_compare_and_eval(tiny_store):
    from typer.testing import CliRunner

    from cli import app

    # MIDI vectors that are the same for every segment: the model can only answer one thing.
    write_feature_table(tiny_store, "midi", "const:v1", "has_midi", seed=5, spread=0.0)
    runner = CliRunner()
    common = ["--epochs", "1", "--folds", "2", "--store", tiny_store.uri]
    trained = runner.invoke(app, ["train", "--midi", "const:v1", *common, "--json"])
    assert trained.exit_code == 0, trained.output
    report = json.loads(trained.stdout)
    assert report["mean_sd"]["collapsed"] == 2 and len(report["runs"]) == 2
    assert all(run["metrics"]["collapsed"] for run in report["runs"])
    assert any("varies by at most 0.0000" in reason for reason in report["mean_sd"]["collapse"])
    compared = runner.invoke(app, ["compare", "--midi", "const:v1", *common])
    assert compared.exit_code == 0 and "COLLAPSED midi=const:v1 in 2 of 2 fold(s)" in compared.output
    assert "2 song folds, mean ± sd" in compared.output
    evaluated = runner.invoke(app, ["eval", *[run["run_id"] for run in report["runs"]],
                                    "--store", tiny_store.uri, "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["mean_sd"]["collapsed"] == 2
