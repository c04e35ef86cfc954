"""How much of a K-fold MIDI-candidate accuracy comes from choosing the epoch on the reported fold.

`train` keeps the epoch with the best score on the validation rows, and `compare --folds K` reports
its metrics on those same rows: the choice is made on the test data. This control trains the same
MIDI-only model (the `scorer` preset's inputs and settings) on the same folds three ways and prints
each fold's MIDI-candidate colour accuracy:

- *reported-fold stop*: as `train` does (the BENCHMARKS.md numbers);
- *inner stop*: early-stopped on an inner 20% song split of the training fold, never looking at the
  reported fold;
- *inner stop, refit*: then retrained on every training row for the epoch count the inner split chose.

    .venv/bin/python benchmarks/bench_quality_selection.py --store /tmp/quality80 --folds 5

The store is one bench_quality.py built (`--build-only`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from featurestore.join import join  # noqa: E402
from featurestore.store import Store  # noqa: E402
from fusion.dataset import build_dataset, song_folds, split_by_song  # noqa: E402
from fusion.metrics import metrics_block  # noqa: E402
from fusion.model import FusionConfig, FusionModel  # noqa: E402
from fusion.presets import PRESETS  # noqa: E402
from fusion.train import TrainConfig, fit, model_config, predict_midi_candidates  # noqa: E402

WAYS = ("reported-fold stop", "inner stop", "inner stop, refit")


def fold_accuracies(data, model_config: FusionConfig, config: TrainConfig, train_idx, val_idx) -> list[float]:
    """MIDI-candidate colour accuracy on `val_idx` of the model trained each of WAYS."""
    inner_train, inner_val = split_by_song(data.song_ids[train_idx], data.colors[train_idx], 0.2, config.seed)
    inner_train, inner_val = train_idx[inner_train], train_idx[inner_val]
    out = []
    for way in WAYS:
        torch.manual_seed(config.seed)
        model = FusionModel(model_config)
        if way == WAYS[0]:
            model.fit_input_statistics(data.values, data.masks, train_idx)
            fit(model, data, train_idx, val_idx, config)
        else:
            model.fit_input_statistics(data.values, data.masks, inner_train)
            _, best = fit(model, data, inner_train, inner_val, config)
            if way == WAYS[2]:
                torch.manual_seed(config.seed + 1)
                model = FusionModel(model_config)
                model.fit_input_statistics(data.values, data.masks, train_idx)
                fit(model, data, train_idx, None, replace(config, epochs=best))
        pred, _ = predict_midi_candidates(model, data, val_idx, config.batch_size)
        out.append(metrics_block(pred)["color_acc"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--midi", action="append", default=None,
                        help="The MIDI input's table spec instead of the scorer preset's (repeat to compare several).")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scorer = PRESETS["scorer"]
    config = replace(TrainConfig(epochs=args.epochs, seed=args.seed, threads=1), **scorer.overrides)
    store = Store.open(args.store, create=False)
    for spec in args.midi or [scorer.inputs["midi"]]:
        joined = join(store, {**scorer.inputs, "midi": spec})
        data = build_dataset(joined)
        table = [fold_accuracies(data, model_config(joined.sources, config), config, train_idx, val_idx)
                 for train_idx, val_idx in song_folds(data.song_ids, data.colors, args.folds, args.seed)]
        for way, values in zip(WAYS, np.array(table).T):
            print(f"| {spec}, {way} | {np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} | "
                  f"{', '.join(f'{v:.3f}' for v in values)} |", flush=True)


if __name__ == "__main__":
    main()
