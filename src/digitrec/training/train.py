"""Training runs: fit a registered model, checkpoint every epoch, resume, and leave a run directory.

A run directory holds ``run.json`` (every setting, the data checksums, versions, machine),
``checkpoints/`` and ``state.json`` while training, then ``model.keras``, ``metrics.json`` and
the evaluation report. Every file is written atomically, so a run killed at any moment resumes
from its last completed epoch with ``resume(run_dir)``, and trains on from there exactly as it
would have without the interruption (``EpochSeeds``).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from digitrec import __version__
from digitrec.data import Dataset, as_model_input, load_dataset, split_validation
from digitrec.errors import DigitrecError
from digitrec.files import atomic_path, read_json, write_json
from digitrec.quiet import progress_printer
from digitrec.training.callbacks import EpochCheckpoint
from digitrec.training.config import (
    TrainConfig,
    check_split,
    recorded_config,
    resumable_config,
)
from digitrec.training.finetune import (
    OwnImages,
    RealSet,
    RealValidation,
    fit_own,
    keep_starting_weights,
    load_own_images,
    load_real_sets,
    real_validation_accuracy,
    starting_model,
    validation_accuracy,
    with_architecture,
    with_real_training,
)
from digitrec.training.model_setup import compile_model, fit_epochs, new_model
from digitrec.training.models import as_float32, ensemble, with_tta
from digitrec.training.rundir import (
    CHECKPOINT_DIR,
    MEMBERS_DIR,
    RUNS_DIR,
    STATE_FILE,
    check_new_run_dir,
    new_run_dir,
)

if TYPE_CHECKING:
    import tensorflow as tf


def default_run_dir(config: TrainConfig) -> Path:
    return RUNS_DIR / f"{datetime.now():%Y%m%d-%H%M%S}-{config.model}"


def first_model(config: TrainConfig, num_classes: int) -> keras.Model:
    """The model a run starts from: ``init``'s trained weights, else a new one."""
    return starting_model(config, num_classes) if config.init else new_model(config, num_classes)


def training_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    num_classes: int,
    verbose: bool = False,
) -> tuple[tf.data.Dataset, list[Any]]:
    """Batches of model inputs and one-hot labels in a new random order at every pass, a fraction
    rendered as users' images and augmented on the fly if configured; and the random sources the
    batches draw from (the order's seed generator, the augmentation layers), for ``EpochSeeds``.

    Shuffles indices and gathers whole batches: no copy of the images in a shuffle buffer (the
    training time is the same as with shuffled images, benchmarks/fast_study.py).
    """
    import tensorflow as tf

    inputs = tf.constant(user_style_mix(images, config.user_style, config.seed, verbose))
    targets = tf.constant(keras.utils.to_categorical(labels, num_classes))
    order = keras.random.SeedGenerator(config.seed)
    indices = tf.range(len(images), dtype="int64")
    dataset = (
        tf.data.Dataset.range(1)
        .flat_map(
            lambda _: tf.data.Dataset.from_tensor_slices(keras.random.shuffle(indices, seed=order))
        )
        .apply(tf.data.experimental.assert_cardinality(len(images)))
        .batch(config.batch_size)
        .map(lambda index: (tf.gather(inputs, index), tf.gather(targets, index)))
    )
    sources: list[Any] = [order]
    if config.augment > 0 or config.elastic > 0:
        from digitrec.training.augment import augmenter

        distort = augmenter(config.augment, config.elastic, seed=config.seed)
        dataset = dataset.map(
            lambda x, y: (distort(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE
        )
        sources.append(distort)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(quick_iterators()), sources


def quick_iterators() -> tf.data.Options:
    """tf.data options without autotuning and default graph rewrites: Keras makes a new iterator
    every epoch, and with them the first step of some epochs waited 1.5-2.5 s (README, "The
    default run"); without them, none did."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.apply_default_optimizations = False
    return options


def user_style_mix(
    images: np.ndarray, fraction: float, seed: int, verbose: bool = False
) -> np.ndarray:
    """Model inputs for uint8 training images, a seeded ``fraction`` of them replaced by their
    renders as users' images, normalized as the recognizer does (``user_style_inputs``)."""
    from digitrec.synth.user_digits import user_style_inputs

    inputs = as_model_input(images)
    chosen = np.flatnonzero(np.random.default_rng(seed).random(len(images)) < fraction)
    if len(chosen):
        inputs[chosen, ..., 0] = user_style_inputs(images[chosen], seed, progress=verbose)
    return inputs


def run_record(
    config: TrainConfig,
    data: Dataset,
    own: OwnImages | None = None,
    real: list[RealSet] | None = None,
) -> dict[str, Any]:
    """What ``run.json`` says about a run: settings, data (each set with its source and terms),
    software and machine."""
    import tensorflow as tf

    return {
        "config": config.to_dict(),
        "dataset": {
            "name": data.info.name,
            "source": data.info.source,
            "checksums": data.checksums,
        },
        **({"images": own.record()} if own else {}),
        **({"real": [s.record(config.real_repeat) for s in real]} if real else {}),
        "versions": {
            "digitrec": __version__,
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "created": datetime.now().isoformat(timespec="seconds"),
    }


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic kernels."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train(
    config: TrainConfig,
    out: Path | None = None,
    data_dir: str | Path | None = None,
    verbose: bool = True,
    tensorboard: bool = False,
) -> Path:
    """Train a model from scratch into a new run directory; return the directory.

    The directory is checked and the data loaded before it is made; a run that fails before its
    first checkpoint takes away what it added, so the same directory can be used again.
    """
    run_dir = Path(out) if out else default_run_dir(config)
    check_new_run_dir(run_dir)
    own = load_own_images(config, verbose)
    real = load_real_sets(config, verbose)
    data = load_dataset(config.dataset, data_dir, progress=verbose)
    check_split(config, len(data.train_images))
    with new_run_dir(run_dir):
        return _start(run_dir, config, data, verbose, tensorboard, own, real)


def _start(
    run_dir: Path,
    config: TrainConfig,
    data: Dataset,
    verbose: bool,
    tensorboard: bool,
    own: OwnImages | None = None,
    real: list[RealSet] | None = None,
) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.ensemble > 1:
        write_json(run_dir / "run.json", run_record(config, data, real=real))
        return _train_ensemble(run_dir, config, data, verbose, tensorboard, real)
    seed_everything(config.seed)
    model = first_model(config, len(data.class_names))
    config = with_architecture(config, model)
    write_json(run_dir / "run.json", run_record(config, data, own, real))
    state = {"epoch": 0, "checkpoint": None, "history": {}}
    return _fit_and_finish(run_dir, config, data, model, state, verbose, tensorboard, own, real)


def resume(
    run_dir: Path,
    data_dir: str | Path | None = None,
    verbose: bool = True,
    tensorboard: bool = False,
) -> Path:
    """Continue an interrupted run from its last completed epoch."""
    run_dir = Path(run_dir)
    config = resumable_config(run_dir)
    own, real = load_own_images(config, verbose), load_real_sets(config, verbose)
    data = load_dataset(config.dataset, data_dir, progress=verbose)
    check_split(config, len(data.train_images))
    return _continue(run_dir, config, data, verbose, tensorboard, own, real)


def _continue(
    run_dir: Path,
    config: TrainConfig,
    data: Dataset,
    verbose: bool,
    tensorboard: bool,
    own: OwnImages | None = None,
    real: list[RealSet] | None = None,
) -> Path:
    if config.ensemble > 1:
        return _train_ensemble(run_dir, config, data, verbose, tensorboard, real)
    seed_everything(config.seed)
    if (run_dir / STATE_FILE).exists():
        state, model = last_checkpoint(run_dir)
    else:  # killed before the first epoch ended
        state = {"epoch": 0, "checkpoint": None, "history": {}}
        model = first_model(config, len(data.class_names))
    return _fit_and_finish(run_dir, config, data, model, state, verbose, tensorboard, own, real)


def last_checkpoint(run_dir: Path) -> tuple[dict[str, Any], keras.Model]:
    """The state of a stopped run and the model of its last completed epoch, or a
    ``DigitrecError`` naming the file that is damaged or missing and what to do."""
    state_path = run_dir / STATE_FILE
    again = f"remove {state_path} to train the run again from its first epoch"
    try:
        state = read_json(state_path)
    except (OSError, ValueError) as exc:
        raise DigitrecError(f"cannot read the run's state {state_path} ({exc}); {again}") from None
    if not _is_state(state):
        raise DigitrecError(
            f"{state_path} is not a run's state (epoch, checkpoint in {CHECKPOINT_DIR}/, "
            f"history); {again}"
        )
    checkpoint = run_dir / state["checkpoint"]
    if not checkpoint.is_file():
        raise DigitrecError(
            f"the checkpoint {checkpoint} that {state_path} names is missing; restore it, or "
            f"{again}"
        )
    try:
        model = keras.saving.load_model(checkpoint)
    except Exception as exc:  # Keras raises many types for a bad file
        raise DigitrecError(f"cannot load the checkpoint {checkpoint} ({exc}); {again}") from None
    return state, model


def _is_state(state: Any) -> bool:
    """Whether ``state`` is what ``EpochCheckpoint`` writes, naming a checkpoint of the run."""
    return (
        isinstance(state, dict)
        and isinstance(state.get("epoch"), int)
        and isinstance(state.get("checkpoint"), str)
        and Path(state["checkpoint"]).parent == Path(CHECKPOINT_DIR)
        and isinstance(state.get("history"), dict)
    )


def fit(
    model: keras.Model,
    config: TrainConfig,
    data: Dataset,
    callbacks: list[keras.callbacks.Callback] | None = None,
    initial_epoch: int = 0,
    verbose: bool = True,
) -> keras.callbacks.History:
    """Fit a model on the training split, validating on the held-out split; compiles from the
    first epoch (a model to fine-tune may bring an optimizer of its own) or if needed."""
    x_train, y_train, x_val, y_val = split_validation(
        data.train_images, data.train_labels, config.val_size
    )
    num_classes = len(data.class_names)
    if initial_epoch == 0 or not model.compiled:
        compile_model(model, config, steps_per_epoch=-(-len(x_train) // config.batch_size))
    validation = (
        (as_model_input(x_val), keras.utils.to_categorical(y_val, num_classes))
        if len(x_val)
        else None
    )
    dataset, random_sources = training_dataset(x_train, y_train, config, num_classes, verbose)
    return fit_epochs(
        model, config, dataset, random_sources, validation, callbacks or [], initial_epoch, verbose
    )


def _fit_and_finish(
    run_dir: Path,
    config: TrainConfig,
    data: Dataset,
    model: keras.Model,
    state: dict[str, Any],
    verbose: bool,
    tensorboard: bool,
    own: OwnImages | None = None,
    real: list[RealSet] | None = None,
) -> Path:
    real = real or []
    # RealValidation first: it adds to the logs that EpochCheckpoint keeps in the history.
    callbacks: list[keras.callbacks.Callback] = [
        *([RealValidation(real, verbose)] if real else []),
        EpochCheckpoint(run_dir, state),
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs")))
    training_data = with_real_training(data, real, config)
    if state["epoch"] < config.epochs and own:
        fit_own(model, config, training_data, own, callbacks, state["epoch"], verbose)
    elif state["epoch"] < config.epochs:
        fit(model, config, training_data, callbacks, state["epoch"], verbose)
    history = state["history"]
    seconds = float(sum(history.get("epoch_seconds", [])))
    model = keep_starting_weights(model, config)
    _finish(run_dir, config, model, data, state["epoch"], history, seconds, own, verbose, real)
    return run_dir


def _train_ensemble(
    run_dir: Path,
    config: TrainConfig,
    data: Dataset,
    verbose: bool,
    tensorboard: bool,
    real: list[RealSet] | None = None,
) -> Path:
    """Train (or finish) each member as a run of its own under ``members/``, with seeds
    ``seed .. seed + ensemble - 1`` and ``member_args`` in turn, then save one model averaging
    their probabilities. A finished member is reused only if its settings are the member's."""
    member_dirs = []
    for member_config in member_configs(config):
        member_dir = run_dir / MEMBERS_DIR / f"seed-{member_config.seed}"
        if (member_dir / "run.json").exists():
            _check_member(member_dir, member_config)
            if not (member_dir / "metrics.json").exists():
                _continue(member_dir, member_config, data, verbose, tensorboard, real=real)
        else:
            _start(member_dir, member_config, data, verbose, tensorboard, real=real)
        member_dirs.append(member_dir)
    members = [keras.saving.load_model(d / "model.keras") for d in member_dirs]
    seconds = sum(read_json(d / "metrics.json")["train_seconds"] for d in member_dirs)
    model = ensemble(members, name=f"{config.model}_ensemble")
    _finish(run_dir, config, model, data, config.epochs, {}, seconds, real=real)
    return run_dir


def member_configs(config: TrainConfig) -> list[TrainConfig]:
    """The settings of each member of an ensemble run."""
    variants = config.member_args or [{}]
    return [
        config.updated(
            {
                "seed": config.seed + i,
                "ensemble": 1,
                "member_args": [],
                "model_args": variants[i % len(variants)],
                "tta": False,
            }
        )
        for i in range(config.ensemble)
    ]


def _check_member(member_dir: Path, expected: TrainConfig) -> None:
    """Refuse a member directory trained with other settings (compared as stored in JSON)."""
    recorded = recorded_config(member_dir).to_dict()
    wanted = json.loads(json.dumps(expected.to_dict()))
    differences = {k: (recorded[k], wanted[k]) for k in wanted if recorded[k] != wanted[k]}
    if differences:
        raise DigitrecError(
            f"{member_dir} holds a run with other settings than this ensemble's member "
            f"(setting: recorded, wanted): {differences}; move it away or resume elsewhere"
        )


def _finish(
    run_dir: Path,
    config: TrainConfig,
    model: keras.Model,
    data: Dataset,
    epochs: int,
    history: dict[str, list[float]],
    train_seconds: float,
    own: OwnImages | None = None,
    verbose: bool = False,
    real: list[RealSet] | None = None,
) -> None:
    """Save the final model in float32 (wrapped for test-time augmentation if configured),
    evaluate the test set once (and the ``real`` sets' validation parts), write metrics (floats
    to ``SIGNIFICANT_DIGITS``) and the report, drop the checkpoints. A run on the user's own images is also exported to ``model.onnx`` and
    calibrated (its steps shown if ``verbose``), before ``metrics.json`` marks it done."""
    from digitrec.training.evaluate import evaluate_probabilities, rounded
    from digitrec.training.saved_models import predict_keras

    model = as_float32(model)
    if config.tta:
        model = with_tta(model)
    with atomic_path(run_dir / "model.keras", suffix=".keras") as tmp:
        model.save(tmp)
    probs = predict_keras(model, data.test_images)
    metrics = evaluate_probabilities(data, probs, out_dir=run_dir, history=history, verbose=False)
    metrics["train_seconds"] = train_seconds
    metrics["epochs"] = epochs
    metrics["history"] = history
    if real:
        metrics.update(real_validation_accuracy(model, real))
    if own:
        metrics.update(validation_accuracy(model, config, data, own))
        data_dir = data.files["train_images"].path.parent
        metrics["onnx"] = str(export_ready(run_dir, own, data_dir, verbose))
    write_json(run_dir / "metrics.json", rounded(metrics))
    for checkpoint in (run_dir / CHECKPOINT_DIR).glob("*.keras"):
        checkpoint.unlink()


def export_ready(
    run_dir: Path, own: OwnImages, data_dir: str | Path | None, verbose: bool = False
) -> Path:
    """Export the run's model to ``RUN_DIR/model.onnx``, parity-checked, with temperature and
    rejection threshold fitted on MNIST's validation split plus your held-out images, so that
    ``digitrec predict --model RUN_DIR`` and ``serve`` take the run directly. ``verbose``
    shows its steps (the calibration takes most of a minute)."""
    from digitrec.training.export import export_model

    held_out = (own.val.uint8_images(), own.val.labels)
    progress = progress_printer() if verbose else None
    return export_model(
        run_dir, "onnx", data_dir=data_dir, own_val=held_out, force=True, progress=progress
    )
