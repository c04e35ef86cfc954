import json
from pathlib import Path

import pytest

from featurestore.errors import StoreError, TableNotFoundError
from fusion.compare import COMPARE_COLUMNS, combination_label, combinations, compare
from fusion.errors import ModelError
from fusion.train import TrainConfig
from tinydata import write_feature_table


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
    assert [e.index for e in events if e.stage == "done"] == [1, 2, 3]
    assert any(e.stage == "epoch" for e in events)

    first, *others = (validation_songs(Path(row["run_dir"])) for row in rows)
    assert first and all(other == first for other in others)
    assert len({row["n"] for row in rows}) == 1  # same validation segments, whatever the inputs
