"""A learned filter that tells lines of handwritten digits from the other ink a line finder crops.

The line finder (``line_finder.find_lines``) also crops printed words, stamps, scribbles, pieces of
rules and the page's edge, and the CTC model reads some of them as digits. The filter is a small
convolutional network on the line model's own input (``line_reader.prepare_line``) that gives the
probability that a crop holds handwritten digits. Its convolutions have no bias and there is no
normalization, so empty paper (zeros) stays zero through them and the features are never
negative; every line gets ``SPILL`` columns of empty paper on its right, beyond which its ink
reaches no feature. So a batch's zero padding changes no line's probability: a line reads the
same alone or batched, as in the line model's batches.

It learns from what the reader will see (``filter_crops`` makes it): the crops the line finder
gives on generated pages of every layout (the line model's training split, style "train"), each
labelled by the true line it covers; on pages where no crop holds digits, the region of the ink
the single-digit reader takes for digits (what ``reader="auto"`` asks the filter about,
``digit_region``); and that region on drawing-pad images (``drawn_image``: digits drawn with a
uniform pen, a 1 often one straight stroke, which alone could pass for a piece of a rule). The
epoch kept is the one with the lowest loss on the same kinds of crops made from the validation
split. It is trained after a line recognizer, into that run's directory (``filter.keras``,
``filter.json``), and exported inside the line model's ONNX file as a second output
(``line_export``); the predictor drops lines below a threshold chosen on validation pages
(``rejection``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

from digitrec.data import load_dataset, split_validation
from digitrec.errors import DigitrecError
from digitrec.files import atomic_path, read_json, write_json
from digitrec.read.line_reader import HEIGHT, pad_batch
from digitrec.synth.style import WriterShapes
from digitrec.training.callbacks import progress_shown
from digitrec.training.filter_crops import Crops, drawn_crops, page_crops
from digitrec.training.line_batches import POOL_BATCHES
from digitrec.training.line_settings import FilterSettings

FILTER_MODEL = "filter.keras"
FILTER_RECORD = "filter.json"
CROPS_FILE = "filter-crops.npz"  # the crops made, kept until the filter is saved
OUTPUT_NAME = "writing"
SPILL = 32  # input columns: more than the last convolution's reach (22) beyond a line's ink
VAL_BATCH = 64
VAL_SEED = 30_000  # validation pages' seeds start here (the rejection's start at 10,000)


def build_line_filter(width: int = 16) -> keras.Model:
    """The probability (N, 1) that each line (N, HEIGHT, width, 1) holds handwritten digits."""
    inputs = keras.Input((HEIGHT, None, 1), name="line")
    x = layers.ZeroPadding2D(((0, 0), (0, SPILL)))(inputs)
    for filters, pool in ((width, True), (2 * width, True), (4 * width, True), (4 * width, False)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, activation="relu")(x)
        if pool:  # "same": a last odd column is pooled alone, not dropped (padding-invariant)
            x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.GlobalMaxPooling2D()(x)
    outputs = layers.Dense(1, activation="sigmoid", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name="line_filter")


def crop_batch_count(crops: int, batch_size: int) -> int:
    """How many batches ``crop_batches`` makes of ``crops`` crops."""
    pools, rest = divmod(crops, batch_size * POOL_BATCHES)
    return pools * POOL_BATCHES + math.ceil(rest / batch_size)


def crop_batches(
    images: list[np.ndarray], targets: np.ndarray, batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled (inputs, targets) batches of crops of similar width (sorted within pools)."""
    order = rng.permutation(len(images))
    pool_size = batch_size * POOL_BATCHES
    groups = []
    for start in range(0, len(order), pool_size):
        pool = sorted(order[start : start + pool_size], key=lambda k: images[k].shape[1])
        groups += [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
    for index in rng.permutation(len(groups)):
        group = groups[index]
        batch = pad_batch([images[k].astype(np.float32) / 255 for k in group])
        yield batch, targets[group][:, None]


# --- training ----------------------------------------------------------------------------------


def train_line_filter(
    run_dir: str | Path,
    settings: FilterSettings | None = None,
    data_dir: str | Path | None = None,
    verbose: bool = True,
    workers: int | None = None,
) -> Path:
    """Train a line filter into a line training run's directory (``filter.keras`` and
    ``filter.json``, each written whole); return the model's path. The crops, most of the time,
    are kept in ``CROPS_FILE`` until then: a stopped run takes them up again and trains anew
    (a few minutes). ``workers`` processes make the pages (default: one per core; a calling
    script needs an ``if __name__ == "__main__"`` guard when it is more than one)."""
    settings = settings or FilterSettings()
    settings.check()
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise DigitrecError(f"{run_dir}: not a line training run (no run.json)")
    started = time.perf_counter()
    train, val = training_crops(
        run_dir, settings, data_dir, verbose, workers or os.cpu_count() or 1
    )
    if verbose:
        print(
            f"{len(train[0])} training crops ({train[1].mean():.0%} with digits), "
            f"{len(val[0])} validation crops, in {time.perf_counter() - started:.0f} s"
        )
    keras.utils.set_random_seed(settings.seed)
    model = build_line_filter(settings.width)
    model.compile(
        optimizer=keras.optimizers.Adam(settings.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(settings.seed)
    history = model.fit(
        _dataset(
            lambda: crop_batches(*train, settings.batch_size, rng),
            len(train[0]),
            settings.batch_size,
        ),
        validation_data=_dataset(
            lambda: crop_batches(*val, VAL_BATCH, np.random.default_rng(0)), len(val[0]), VAL_BATCH
        ),
        epochs=settings.epochs,
        shuffle=False,  # crop_batches shuffles
        callbacks=[
            keras.callbacks.EarlyStopping(patience=settings.epochs, restore_best_weights=True),
            *progress_shown(verbose),
        ],
        verbose=0,  # Progress shows it
    ).history
    out = run_dir / FILTER_MODEL
    with atomic_path(out, suffix=".keras") as tmp:
        model.save(tmp)
    record = {
        "settings": asdict(settings),
        "train_crops": len(train[0]),
        "train_share_with_digits": float(train[1].mean()),
        "val_crops": len(val[0]),
        "best_epoch": int(np.argmin(history["val_loss"])) + 1,
        "val_accuracy": float(history["val_accuracy"][int(np.argmin(history["val_loss"]))]),
        "seconds": time.perf_counter() - started,
        "history": {key: [float(v) for v in values] for key, values in history.items()},
    }
    write_json(run_dir / FILTER_RECORD, record)
    (run_dir / CROPS_FILE).unlink(missing_ok=True)
    return out


def training_crops(
    run_dir: Path,
    settings: FilterSettings,
    data_dir: str | Path | None,
    verbose: bool,
    workers: int = 1,
) -> tuple[Crops, Crops]:
    """The training and validation crops: those kept in ``CROPS_FILE`` by a stopped run with
    the same pages, else made from the line model's data (and kept)."""
    pages = [
        settings.pages_per_layout,
        settings.val_pages_per_layout,
        settings.drawn,
        settings.seed,
        *(getattr(settings, shape.name) for shape in fields(WriterShapes)),
    ]
    kept = run_dir / CROPS_FILE
    if kept.is_file():
        with np.load(kept) as saved:
            if saved["pages"].tolist() == pages:
                return _unpacked(saved, "train"), _unpacked(saved, "val")
    line_settings = read_json(run_dir / "run.json")["settings"]  # the line model's data
    data = load_dataset(line_settings["dataset"], data_dir, progress=verbose)
    x_train, y_train, x_val, y_val = split_validation(
        data.train_images, data.train_labels, line_settings["val_size"]
    )
    train = _joined(
        page_crops(
            x_train,
            y_train,
            settings.pages_per_layout,
            settings.seed,
            settings.training_style(),
            verbose,
            workers,
        ),
        drawn_crops(x_train, settings.drawn, settings.seed),
    )
    val = _joined(
        page_crops(
            x_val, y_val, settings.val_pages_per_layout, VAL_SEED, "validation", verbose, workers
        ),
        drawn_crops(x_val, max(1, settings.drawn // 20), VAL_SEED),
    )
    with atomic_path(kept, suffix=".npz") as tmp:
        np.savez(tmp, pages=pages, **_packed(train, "train"), **_packed(val, "val"))
    return train, val


def _joined(first: Crops, second: Crops) -> Crops:
    return first[0] + second[0], np.concatenate([first[1], second[1]])


def _packed(crops: Crops, name: str) -> dict[str, np.ndarray]:
    """Crops of one height as arrays: side by side, their widths, their labels."""
    images, targets = crops
    side_by_side = np.concatenate(images, axis=1) if images else np.zeros((HEIGHT, 0), np.uint8)
    widths = [image.shape[1] for image in images]
    return {f"{name}_images": side_by_side, f"{name}_widths": widths, f"{name}_targets": targets}


def _unpacked(saved: Any, name: str) -> Crops:
    ends = np.cumsum(saved[f"{name}_widths"])
    images = np.split(saved[f"{name}_images"], ends[:-1], axis=1) if len(ends) else []
    return list(images), saved[f"{name}_targets"]


def _dataset(make: Any, crops: int, batch_size: int) -> Any:
    """A tf.data dataset of the batches ``make()`` yields of ``crops`` crops (one trace for
    every width), of a known length (Keras warns of one it learns by running out)."""
    import tensorflow as tf

    signature = (
        tf.TensorSpec((None, HEIGHT, None, 1), tf.float32),
        tf.TensorSpec((None, 1), tf.float32),
    )
    dataset = tf.data.Dataset.from_generator(make, output_signature=signature)
    return dataset.apply(
        tf.data.experimental.assert_cardinality(crop_batch_count(crops, batch_size))
    )
