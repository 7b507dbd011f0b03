"""Training runs: fit a registered model, checkpoint every epoch, resume, and leave a run directory.

A run directory holds ``run.json`` (every setting, the data checksums, versions, machine),
``checkpoints/`` and ``state.json`` while training, then ``model.keras``, ``metrics.json`` and
the evaluation report. Every file is written atomically, so a run killed at any moment resumes
from its last completed epoch with ``resume(run_dir)``.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np

from digitrec import __version__
from digitrec.config import TrainConfig
from digitrec.data import Dataset, as_model_input, load_dataset, split_validation
from digitrec.errors import DigitrecError
from digitrec.files import atomic_path, read_json, write_json
from digitrec.models import build_model, model_spec

RUNS_DIR = Path("runs")
STATE_FILE = "state.json"
CHECKPOINT_DIR = "checkpoints"


def resolve_config(model: str = "lenet5", **overrides: Any) -> TrainConfig:
    """Defaults, then the model's recipe, then the caller's settings (``None`` means unset)."""
    spec = model_spec(model)
    return TrainConfig(model=model).updated(spec.recipe).updated(overrides)


def default_run_dir(config: TrainConfig) -> Path:
    return RUNS_DIR / f"{datetime.now():%Y%m%d-%H%M%S}-{config.model}"


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch: save the model (with optimizer state) atomically, then the run state.

    The state file names the newest complete checkpoint, and older checkpoints are removed only
    after it is written, so a kill at any moment leaves a consistent pair behind.
    """

    def __init__(self, run_dir: Path, state: dict[str, Any]):
        super().__init__()
        self.run_dir = run_dir
        self.state = state
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self._started
        history = self.state["history"]
        for key, value in {**(logs or {}), "epoch_seconds": seconds}.items():
            history.setdefault(key, []).append(float(value))
        name = f"{CHECKPOINT_DIR}/epoch-{epoch + 1:03d}.keras"
        with atomic_path(self.run_dir / name, suffix=".keras") as tmp:
            self.model.save(tmp)
        previous = self.state.get("checkpoint")
        self.state.update(epoch=epoch + 1, checkpoint=name)
        write_json(self.run_dir / STATE_FILE, self.state)
        if previous and previous != name:
            (self.run_dir / previous).unlink(missing_ok=True)


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam with the configured learning-rate schedule."""
    if config.schedule == "constant":
        rate: Any = config.learning_rate
    elif config.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=steps_per_epoch * config.epochs
        )
    else:
        raise DigitrecError(f"unknown schedule {config.schedule!r}; known: constant, cosine")
    return keras.optimizers.Adam(rate)


def compile_model(model: keras.Model, config: TrainConfig, steps_per_epoch: int) -> None:
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )


def run_record(config: TrainConfig, data: Dataset) -> dict[str, Any]:
    """What ``run.json`` says about a run: settings, data, software and machine."""
    import tensorflow as tf

    return {
        "config": config.to_dict(),
        "dataset": {"name": data.info.name, "checksums": data.checksums},
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
    """Train a model from scratch into a new run directory; return the directory."""
    run_dir = Path(out) if out else default_run_dir(config)
    if (run_dir / "run.json").exists():
        raise DigitrecError(f"{run_dir} already holds a run; resume it with --resume {run_dir}")
    data = load_dataset(config.dataset, data_dir, progress=verbose)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "run.json", run_record(config, data))
    seed_everything(config.seed)
    model = build_model(config.model, len(data.class_names), **config.model_args)
    state = {"epoch": 0, "checkpoint": None, "history": {}}
    return _fit_and_finish(run_dir, config, data, model, state, verbose, tensorboard)


def resume(
    run_dir: Path,
    data_dir: str | Path | None = None,
    verbose: bool = True,
    tensorboard: bool = False,
) -> Path:
    """Continue an interrupted run from its last completed epoch."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").exists():
        raise DigitrecError(f"{run_dir} is not a run directory (no run.json)")
    if (run_dir / "metrics.json").exists():
        raise DigitrecError(f"{run_dir} is already complete")
    config = TrainConfig.from_dict(read_json(run_dir / "run.json")["config"])
    data = load_dataset(config.dataset, data_dir, progress=verbose)
    seed_everything(config.seed)
    state_path = run_dir / STATE_FILE
    if state_path.exists():
        state = read_json(state_path)
        model = keras.saving.load_model(run_dir / state["checkpoint"])
    else:  # killed before the first epoch ended
        state = {"epoch": 0, "checkpoint": None, "history": {}}
        model = build_model(config.model, len(data.class_names), **config.model_args)
    return _fit_and_finish(run_dir, config, data, model, state, verbose, tensorboard)


def fit(
    model: keras.Model,
    config: TrainConfig,
    data: Dataset,
    callbacks: list[keras.callbacks.Callback] | None = None,
    initial_epoch: int = 0,
    verbose: bool = True,
) -> keras.callbacks.History:
    """Fit a model on the training split, validating on the held-out split; compiles if needed."""
    x_train, y_train, x_val, y_val = split_validation(
        data.train_images, data.train_labels, config.val_size
    )
    num_classes = len(data.class_names)
    if not model.compiled:
        compile_model(model, config, steps_per_epoch=-(-len(x_train) // config.batch_size))
    validation = (
        (as_model_input(x_val), keras.utils.to_categorical(y_val, num_classes))
        if len(x_val)
        else None
    )
    return model.fit(
        as_model_input(x_train),
        keras.utils.to_categorical(y_train, num_classes),
        batch_size=config.batch_size,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        validation_data=validation,
        callbacks=callbacks,
        verbose=1 if verbose else 0,
    )


def _fit_and_finish(
    run_dir: Path,
    config: TrainConfig,
    data: Dataset,
    model: keras.Model,
    state: dict[str, Any],
    verbose: bool,
    tensorboard: bool,
) -> Path:
    callbacks: list[keras.callbacks.Callback] = [EpochCheckpoint(run_dir, state)]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs")))
    if state["epoch"] < config.epochs:
        fit(model, config, data, callbacks, state["epoch"], verbose)
    with atomic_path(run_dir / "model.keras", suffix=".keras") as tmp:
        model.save(tmp)
    _finish(run_dir, model, data, state)
    return run_dir


def _finish(run_dir: Path, model: keras.Model, data: Dataset, state: dict[str, Any]) -> None:
    """Evaluate the test set once, write metrics and the report, drop the checkpoints."""
    from digitrec.evaluate import evaluate_probabilities, predict_keras

    probs = predict_keras(model, data.test_images)
    history = state["history"]
    metrics = evaluate_probabilities(data, probs, out_dir=run_dir, history=history, verbose=False)
    metrics["train_seconds"] = float(sum(history.get("epoch_seconds", [])))
    metrics["epochs"] = state["epoch"]
    metrics["history"] = history
    write_json(run_dir / "metrics.json", metrics)
    for checkpoint in (run_dir / CHECKPOINT_DIR).glob("*.keras"):
        checkpoint.unlink()
