"""What costs time when Keras trains a small CNN on a CPU: the `fast` recipe against one change at
a time, and against a Keras port of the published PyTorch speed recipe, in the same run.

Each row trains with `digitrec.training.train.fit` on the first 55,000 training images for several seeds
and reports the median training time (the sum of the epochs' wall times, as `train_seconds`; data
in memory) and the mean accuracy on the 5,000 held-out validation images. The test set is not
touched: this table is what the `fast` recipe was chosen on.

    python benchmarks/fast_study.py [--seeds 0 1 2] [--write-readme]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import keras

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, markdown_table, median, write_into_readme


@dataclass
class Variant:
    """One row: settings changed from the `fast` recipe, and optionally another network or
    input pipeline."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    build: Callable[[], Any] | None = None
    pipeline: Callable[..., Any] | None = None


def relu_then_pool() -> Any:
    """`fast` with the usual order, activation before pooling (4x more values through ReLU)."""
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(16, 5, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )


def shuffled_images(images, labels, config, num_classes, verbose=False) -> Any:
    """The textbook pipeline: slice the image tensors, shuffle the images themselves, batch."""
    import tensorflow as tf

    from digitrec.data import as_model_input

    dataset = (
        tf.data.Dataset.from_tensor_slices(
            (as_model_input(images), keras.utils.to_categorical(labels, num_classes))
        )
        .shuffle(len(images), seed=config.seed)
        .batch(config.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    return dataset, []  # as train.training_dataset: no random sources for EpochSeeds to set


VARIANTS = [
    Variant("`fast` as shipped"),
    Variant("one batch per TensorFlow call", {"steps_per_execution": 1}),
    Variant("ReLU before pooling", build=relu_then_pool),
    Variant("images shuffled in a tf.data buffer", pipeline=shuffled_images),
    Variant("float32 throughout (no bfloat16 mixed precision)", {"precision": "float32"}),
    Variant(
        "batch 128, learning rate 0.01",
        {"batch_size": 128, "learning_rate": 0.01},
    ),
    Variant("batch 256, learning rate 0.02", {"batch_size": 256, "learning_rate": 0.02}),
    Variant("no label smoothing", {"label_smoothing": 0.0}),
    Variant("Dense 128", {"model_args": {"dense": 128}}),
    Variant(
        "Dense 128, no label smoothing (the recipe before)",
        {"model_args": {"dense": 128}, "label_smoothing": 0.0},
    ),
    Variant("16, 24 filters", {"model_args": {"filters": (16, 24)}}),
    Variant("12, 32 filters", {"model_args": {"filters": (12, 32)}}),
    Variant(
        "wider: 32, 64 filters, Dense 256", {"model_args": {"filters": (32, 64), "dense": 256}}
    ),
    Variant("one epoch", {"epochs": 1}),
    Variant(
        "one epoch, peak 0.02, warm-up 0.35",
        {"epochs": 1, "learning_rate": 0.02, "warmup": 0.35},
    ),
    Variant(
        "reference: the PyTorch speed recipe in Keras (24, 32 filters, Dense 256, batch 256, "
        "peak 0.01, warm-up 0.3, one epoch)",
        {
            "model_args": {"filters": (24, 32), "dense": 256},
            "epochs": 1,
            "batch_size": 256,
            "learning_rate": 0.01,
            "warmup": 0.3,
            "label_smoothing": 0.0,
        },
    ),
]


class EpochTimer(keras.callbacks.Callback):
    """Sums the epochs' wall times, the definition of `train_seconds`."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self._start


def train_once(variant: Variant, seed: int, data: Any) -> tuple[float, float]:
    """(train seconds, validation accuracy) of one seed's run of a variant."""
    from digitrec.training.config import resolve_config
    from digitrec.training.model_setup import precision_policy
    from digitrec.training.models import build_model
    from digitrec.training.train import fit, seed_everything

    config = resolve_config("fast", seed=seed, val_size=5000).updated(variant.settings)
    keras.backend.clear_session()
    seed_everything(seed)
    with precision_policy(config.precision):
        model = variant.build() if variant.build else build_model("fast", **config.model_args)
    timer = EpochTimer()
    pipeline = variant.pipeline
    with (
        mock.patch("digitrec.training.train.training_dataset", pipeline)
        if pipeline
        else nullcontext()
    ):
        history = fit(model, config, data, [timer], verbose=False)
    return timer.seconds, history.history["val_accuracy"][-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-dir")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()

    from digitrec.data import load_dataset

    data = load_dataset("mnist", args.data_dir, progress=False)
    load_before = os.getloadavg()[0]
    train_once(VARIANTS[0], args.seeds[0], data)  # untimed: the process's one-time set-up
    results = {}
    for variant in VARIANTS:
        runs = [train_once(variant, seed, data) for seed in args.seeds]
        results[variant.name] = runs
        print(variant.name, [f"{s:.1f} s, {a:.2%}" for s, a in runs], flush=True)
    shipped = median([s for s, _ in results[VARIANTS[0].name]])
    rows = []
    for name, runs in results.items():
        seconds = median([s for s, _ in runs])
        accuracy = statistics.mean(a for _, a in runs)
        rows.append([name, f"{seconds:.1f}", f"{seconds / shipped:.2f}×", f"{accuracy:.2%}"])
    header = [
        "change from `fast`",
        "median train s",
        "time vs `fast`",
        "validation accuracy (mean)",
    ]
    text = (
        f"{machine()}; {len(args.seeds)} seeds per row; load average {load_before:.1f} at the "
        f"start, {os.getloadavg()[0]:.1f} at the end.\n\n" + markdown_table(header, rows)
    )
    print(text)
    if args.write_readme:
        write_into_readme("fast", text)


if __name__ == "__main__":
    main()
