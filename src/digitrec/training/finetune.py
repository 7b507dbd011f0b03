"""Training on more than MNIST: your own images (read and split, batches mixing them with
MNIST's, a run finished ready to use: ONNX exported and calibrated), real handwriting sets added
to the training split (``real``) and measured every epoch, and the initial model of fine-tuning.

``digitrec train --images DIR [--init SOURCE]`` and ``--real cvl`` land here from
``digitrec.training.train``: the run directory, checkpoints and resuming are a training run's as
any other.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from digitrec.data import Dataset, as_model_input, split_validation
from digitrec.errors import DataError, DigitrecError, ModelError
from digitrec.read.image_folders import (
    CLASS_NAMES,
    ImageFolderData,
    read_image_folders,
    skipped_lines,
)
from digitrec.training.config import TrainConfig
from digitrec.training.models import INPUT_SHAPE, MODELS
from digitrec.training.saved_models import initial_model, predict_keras

if TYPE_CHECKING:
    import tensorflow as tf

SKIPPED_SHOWN = 20  # skipped files listed by name; the rest are counted


@dataclass
class OwnImages:
    """Your images, split: ``train`` to learn from, ``val`` held out (validation, calibration)."""

    train: ImageFolderData
    val: ImageFolderData
    folders: list[str]
    skipped: int

    def record(self) -> dict[str, Any]:
        """What ``run.json`` says about them."""
        return {
            "folders": self.folders,
            "train": self.train.class_counts(),
            "val": self.val.class_counts(),
            "skipped": self.skipped,
        }


def load_own_images(config: TrainConfig, verbose: bool = True) -> OwnImages | None:
    """Read the ``images`` folders (skipped files listed on stderr with their count) and hold
    out a stratified, seeded ``images_val`` share of them; bad folders raise ``DataError``.
    ``None`` for a run without ``images``. Done before any run directory is made."""
    if not config.images:
        return None
    data = read_image_folders(config.images)
    if verbose:
        print(f"your images: {data.summary()}", file=sys.stderr)
    for line in skipped_lines(data.skipped, SKIPPED_SHOWN):
        print(f"  {line}", file=sys.stderr)
    train, val = stratified_split(data, config.images_val, config.seed)
    return OwnImages(train, val, list(config.images), len(data.skipped))


@dataclass(frozen=True)
class RealSet:
    """One real handwriting set of a run: its part to learn from and its part to validate on
    (uint8 images normalized like users' crops, MNIST polarity)."""

    name: str
    source: str
    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray

    def record(self, repeat: int) -> dict[str, Any]:
        """What ``run.json`` and the model card say about it."""
        return {
            "name": self.name,
            "source": self.source,
            "train": len(self.train_labels),
            "valid": len(self.val_labels),
            "repeat": repeat,
        }


def load_real_sets(config: TrainConfig, verbose: bool = True) -> list[RealSet]:
    """The ``real`` sets (``digitrec.realdigits``), verified; a ``DataError`` naming the flag and
    ``DIGITREC_REAL_DIR`` where one is missing. Done before any run directory is made."""
    from digitrec.realdigits import CVL_SOURCE, load_cvl

    sets = []
    for name in config.real:  # "cvl", the only one of REAL_SETS so far
        try:
            train, valid = load_cvl("train"), load_cvl("valid")
        except DigitrecError as exc:
            raise DataError(f"--real {name}: {exc}") from None
        sets.append(
            RealSet(name, CVL_SOURCE, train.images, train.labels, valid.images, valid.labels)
        )
        if verbose:
            print(
                f"{name}: {len(train.labels)} training images (each {config.real_repeat}x an "
                f"epoch), {len(valid.labels)} validation images",
                file=sys.stderr,
            )
    return sets


def with_real_training(data: Dataset, real: list[RealSet], config: TrainConfig) -> Dataset:
    """``data`` with the real sets' training images (each ``real_repeat`` times) added to its
    training split, before the held-out validation split (the last ``val_size`` images), so that
    the validation split stays MNIST's and out of training."""
    if not real:
        return data
    cut = len(data.train_images) - config.val_size
    parts = [
        (data.train_images[:cut], data.train_labels[:cut]),
        *[(s.train_images, s.train_labels) for s in real for _ in range(config.real_repeat)],
        (data.train_images[cut:], data.train_labels[cut:]),
    ]
    return Dataset(
        data.info,
        np.concatenate([images for images, _ in parts]),
        np.concatenate([labels for _, labels in parts]),
        data.test_images,
        data.test_labels,
        data.files,
    )


class RealValidation(keras.callbacks.Callback):
    """After every epoch, the accuracy on each real set's validation part, logged as
    ``<name>_val_accuracy`` beside Keras's ``val_accuracy`` (MNIST's validation split), so
    that the run's history holds both; shown on stderr if ``verbose``."""

    def __init__(self, real: list[RealSet], verbose: bool = False):
        super().__init__()
        self.real = real
        self.verbose = verbose

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for real in self.real:
            accuracy = _accuracy(self.model, real.val_images, real.val_labels)
            if logs is not None:
                logs[f"{real.name}_val_accuracy"] = accuracy
            if self.verbose:
                print(
                    f"epoch {epoch + 1}: {real.name} valid accuracy {accuracy:.4f}", file=sys.stderr
                )


def real_validation_accuracy(model: keras.Model, real: list[RealSet]) -> dict[str, float]:
    """The final model's accuracy on each real set's validation part."""
    return {f"{s.name}_val_accuracy": _accuracy(model, s.val_images, s.val_labels) for s in real}


def starting_model(config: TrainConfig, num_classes: int = len(CLASS_NAMES)) -> keras.Model:
    """``init``'s trained model, with only the layers that ``train_layers`` names trainable;
    a ``ModelError`` if it is not a classifier of ``num_classes`` digits (``check_fits``)."""
    model = initial_model(config.init)
    check_fits(model, config.init, num_classes)
    if config.train_layers == "head":
        head = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1]
        for layer in model.layers:
            layer.trainable = layer is head
    elif config.train_layers == "frozen-norm":
        for layer in model.layers:  # a frozen BatchNormalization runs in inference mode
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    return model


def check_fits(model: keras.Model, init: str, num_classes: int) -> None:
    """Refuse an initial model of another architecture: one that does not take our 28x28x1
    inputs to ``num_classes`` probabilities, which training would stop on with a traceback."""
    expected = ((None, *INPUT_SHAPE), (None, num_classes))
    try:
        shapes = (tuple(model.input_shape), tuple(model.output_shape))
    except (AttributeError, ValueError):  # a model without one input and one output
        shapes = None
    if shapes != expected:
        found = f"input {shapes[0]}, output {shapes[1]}" if shapes else "not one input and output"
        raise ModelError(
            f"--init {init}: a model of another architecture ({found}); fine-tuning starts from "
            f"a classifier of {INPUT_SHAPE[0]}x{INPUT_SHAPE[1]} digit images into {num_classes} "
            "classes: give 'default', or a digitrec run directory or .keras file"
        )


def keep_starting_weights(model: keras.Model, config: TrainConfig) -> keras.Model:
    """The trained ``model`` with its weights (batch-normalization statistics included) averaged
    with the starting model's, ``keep_init`` of them the starting model's: weight-space
    ensembling (WiSE-FT), which keeps more of what the starting model knew."""
    if not config.keep_init:
        return model
    start = initial_model(config.init).get_weights()
    trained = model.get_weights()
    if [w.shape for w in start] != [w.shape for w in trained]:
        raise ModelError(
            f"--init {config.init} is no longer the model this run started from (its weights "
            "differ in shape), so it cannot be kept in the result; put that model back"
        )
    share = config.keep_init
    model.set_weights([share * s + (1 - share) * t for s, t in zip(start, trained, strict=True)])
    return model


def with_architecture(config: TrainConfig, model: keras.Model) -> TrainConfig:
    """The settings as recorded: with ``init``, the model named as the loaded one (where it is a
    registered architecture), since that is what trains."""
    if config.init and model.name in MODELS:
        return config.updated({"model": model.name})
    return config


def batch_shares(config: TrainConfig) -> tuple[int, int]:
    """How many of your images and how many MNIST images make up each batch."""
    mnist = round(config.batch_size * config.mix_mnist)
    own = max(1, config.batch_size - mnist)
    return own, config.batch_size - own


def mixed_dataset(
    own: ImageFolderData, mnist_images: np.ndarray, mnist_labels: np.ndarray, config: TrainConfig
) -> tuple[tf.data.Dataset, list[Any]]:
    """One epoch = one pass over your images in a new order, each batch completed with MNIST
    training images drawn anew (``batch_shares``), augmented if configured; and the random
    sources the batches draw from, for ``EpochSeeds``."""
    import tensorflow as tf

    n_own, n_mnist = batch_shares(config)
    steps = math.ceil(len(own) / n_own)
    images = tf.constant(
        np.concatenate([as_model_input(own.uint8_images()), as_model_input(mnist_images)])
    )
    labels = np.concatenate([own.labels, mnist_labels])
    targets = tf.constant(keras.utils.to_categorical(labels, len(CLASS_NAMES)))
    order = keras.random.SeedGenerator(config.seed)
    own_indices = tf.range(len(own), dtype="int64")
    mnist_indices = tf.range(len(own), len(labels), dtype="int64")
    repeats = math.ceil(steps * n_mnist / max(len(mnist_images), 1))

    def epoch(_: Any) -> tf.data.Dataset:
        ours = tf.data.Dataset.from_tensor_slices(keras.random.shuffle(own_indices, seed=order))
        batches = ours.batch(n_own)
        if n_mnist:
            drawn = tf.tile(keras.random.shuffle(mnist_indices, seed=order), [repeats])
            theirs = tf.data.Dataset.from_tensor_slices(drawn[: steps * n_mnist]).batch(n_mnist)
            batches = tf.data.Dataset.zip(batches, theirs).map(lambda a, b: tf.concat([a, b], 0))
        return batches

    dataset = (
        tf.data.Dataset.range(1)
        .flat_map(epoch)
        .apply(tf.data.experimental.assert_cardinality(steps))
        .map(lambda index: (tf.gather(images, index), tf.gather(targets, index)))
    )
    sources: list[Any] = [order]
    if config.augment > 0 or config.elastic > 0:
        from digitrec.training.augment import augmenter

        distort = augmenter(config.augment, config.elastic, seed=config.seed)
        dataset = dataset.map(lambda x, y: (distort(x, training=True), y))
        sources.append(distort)
    return dataset.prefetch(tf.data.AUTOTUNE), sources


def fit_own(
    model: keras.Model,
    config: TrainConfig,
    data: Dataset,
    own: OwnImages,
    callbacks: list[keras.callbacks.Callback],
    initial_epoch: int = 0,
    verbose: bool = True,
) -> keras.callbacks.History:
    """Fit on your training images mixed with MNIST's training split, validating on your
    held-out images; compiles anew from the first epoch (a saved model brings its own optimizer,
    whose schedule may have run down), and a resumed checkpoint keeps its optimizer."""
    from digitrec.training.model_setup import compile_model, fit_epochs

    mnist_images, mnist_labels, _, _ = split_validation(
        data.train_images, data.train_labels, config.val_size
    )
    dataset, sources = mixed_dataset(own.train, mnist_images, mnist_labels, config)
    if initial_epoch == 0 or not model.compiled:  # the initial model's optimizer is not ours
        compile_model(model, config, steps_per_epoch=int(dataset.cardinality()))
    validation = (
        as_model_input(own.val.uint8_images()),
        keras.utils.to_categorical(own.val.labels, len(CLASS_NAMES)),
    )
    return fit_epochs(
        model, config, dataset, sources, validation, callbacks, initial_epoch, verbose
    )


def validation_accuracy(
    model: keras.Model, config: TrainConfig, data: Dataset, own: OwnImages
) -> dict[str, float]:
    """Accuracy on your held-out images and on MNIST's validation split (what the recipe was
    chosen on); no test image is read."""
    _, _, mnist_images, mnist_labels = split_validation(
        data.train_images, data.train_labels, config.val_size
    )
    result = {"own_val_accuracy": _accuracy(model, own.val.uint8_images(), own.val.labels)}
    if len(mnist_images):
        result["mnist_val_accuracy"] = _accuracy(model, mnist_images, mnist_labels)
    return result


def _accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    return float((predict_keras(model, images).argmax(axis=1) == labels).mean())


def stratified_split(
    data: ImageFolderData, val_fraction: float, seed: int = 0
) -> tuple[ImageFolderData, ImageFolderData]:
    """Hold out ``val_fraction`` of the images for validation, the same share of each class
    (scikit-learn's ``train_test_split`` with ``stratify``); returns (train, validation)."""
    from sklearn.model_selection import train_test_split

    check_stratifiable(data, val_fraction)
    train, val = train_test_split(
        np.arange(len(data)), test_size=val_fraction, stratify=data.labels, random_state=seed
    )
    return data.subset(np.sort(train)), data.subset(np.sort(val))


def check_stratifiable(data: ImageFolderData, val_fraction: float) -> None:
    """A clear DataError where ``train_test_split`` would fail: every class needs an image on
    both sides (scikit-learn holds out ``ceil(fraction × N)`` images)."""
    if not 0 < val_fraction < 1:
        raise DataError(f"the validation fraction must lie between 0 and 1, not {val_fraction}")
    counts = data.class_counts()
    lone = [name for name, n in counts.items() if n < 2]
    if lone:
        raise DataError(
            f"class {', '.join(lone)} has a single image: a validation split taken from every "
            "class needs at least 2 images of each"
        )
    held_out = math.ceil(val_fraction * len(data))
    if min(held_out, len(data) - held_out) < len(counts):
        raise DataError(
            f"a validation fraction of {val_fraction:g} of {len(data)} images leaves "
            f"{held_out} for validation and {len(data) - held_out} for training, fewer than "
            f"the {len(counts)} classes: each side needs an image of every class"
        )
