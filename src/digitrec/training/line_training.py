"""Training the CTC line recognizer into a run directory (``line_export`` exports it).

Training lines are made from MNIST's training split (the first 55,000 images), fresh every
epoch from a seed of its own; validation lines from the validation split (the last 5,000
training images), the same every epoch, choose the best epoch by the fraction of lines read
exactly. The test split is never used here. A run directory holds ``run.json`` (settings, data,
versions), ``checkpoints/`` and ``state.json`` while training (written atomically after every
epoch, so calling ``train_line_model`` again on it resumes), then ``model.keras`` (the best
epoch) and ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import keras
import numpy as np

from digitrec.data import Dataset, load_dataset, split_validation
from digitrec.errors import DigitrecError
from digitrec.files import atomic_path, read_json, write_json
from digitrec.read.line_reader import HEIGHT, PreparedLine, decode_text
from digitrec.realdigits import CvlPart, load_cvl
from digitrec.training.background import in_background
from digitrec.training.callbacks import EpochCheckpoint, progress_shown
from digitrec.training.config import TrainConfig
from digitrec.training.line_batches import LineSource, batch_arrays, prepared, training_batches
from digitrec.training.line_model import LineCTCLoss, build_line_model
from digitrec.training.line_settings import LineTrainSettings, init_model_file
from digitrec.training.model_setup import learning_rate
from digitrec.training.rundir import CHECKPOINT_DIR, STATE_FILE
from digitrec.training.train import run_record

VAL_BATCH = 64


def default_source() -> LineSource:
    from digitrec.synth.pages import line_samples

    return line_samples


@dataclass(frozen=True)
class LineDigits:
    """The digits lines are written with: images (MNIST's layout), labels, and each image's
    writer (-1 where none is known: a line of such digits mixes writers)."""

    images: np.ndarray
    labels: np.ndarray
    writers: np.ndarray

    @classmethod
    def unknown_writers(cls, images: np.ndarray, labels: np.ndarray) -> LineDigits:
        return cls(images, labels, np.full(len(images), -1))

    def plus(self, part: CvlPart, times: int = 1) -> LineDigits:
        """These digits and ``times`` copies of a real part's, with its writers."""
        return LineDigits(
            np.concatenate([self.images, *[part.images] * times]),
            np.concatenate([self.labels, *[part.labels] * times]),
            np.concatenate([self.writers, *[part.writers] * times]),
        )

    def source(self, settings: LineTrainSettings) -> LineSource:
        """The settings' line source, writing a line of known writers' digits with one
        writer's (a module-level function or a partial of one: it pickles)."""
        from digitrec.synth.documents import document_lines

        base = document_lines if settings.source == "documents" else default_source()
        return partial(base, writers=self.writers) if (self.writers >= 0).any() else base


def line_digits(settings: LineTrainSettings, data: Dataset) -> tuple[LineDigits, LineDigits]:
    """The training and validation digits (``training_digits``, ``validation_digits``)."""
    return training_digits(settings, data), validation_digits(settings, data)


def training_digits(settings: LineTrainSettings, data: Dataset) -> LineDigits:
    """The dataset's training split, and with ``real="cvl"`` CVL's train part
    (``real_repeat`` times)."""
    images, labels, _, _ = split_validation(data.train_images, data.train_labels, settings.val_size)
    digits = LineDigits.unknown_writers(images, labels)
    return (
        digits.plus(load_cvl("train"), settings.real_repeat) if settings.real == "cvl" else digits
    )


def validation_digits(settings: LineTrainSettings, data: Dataset) -> LineDigits:
    """The dataset's validation split, and with ``real="cvl"`` CVL's valid part."""
    _, _, images, labels = split_validation(data.train_images, data.train_labels, settings.val_size)
    digits = LineDigits.unknown_writers(images, labels)
    return digits.plus(load_cvl("valid")) if settings.real == "cvl" else digits


def starting_model(path: Path) -> keras.Model:
    """A trained line model to start from, every batch normalization frozen (inference mode)."""
    model = keras.saving.load_model(path, compile=False)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return model


# --- training ------------------------------------------------------------------------------------


def train_line_model(
    settings: LineTrainSettings,
    out_dir: str | Path,
    data_dir: str | Path | None = None,
    source: LineSource | None = None,
    verbose: bool = True,
    background: bool = True,
) -> Path:
    """Train a line recognizer into ``out_dir``, or resume the run there; return the directory.

    The lines are written with ``line_digits`` by the settings' source (``LineDigits.source``),
    starting from new weights or the model ``settings.init`` names. ``source`` replaces the
    settings' (a test's lines; writers not passed). The lines are made in a worker
    process while the model trains (``background``: the source must be a module-level function,
    and a calling script needs an ``if __name__ == "__main__"`` guard) or in this one.
    """
    settings.check()
    run_dir = Path(out_dir)
    _check_run_dir(run_dir, settings)
    data = load_dataset(settings.dataset, data_dir, progress=verbose)
    train, val = line_digits(settings, data)
    state = _start_or_resume(run_dir, settings, data)
    keras.utils.set_random_seed(settings.seed)
    validation = validation_batches(
        source or val.source(settings), val.images, val.labels, settings
    )
    if state["checkpoint"]:
        model = keras.saving.load_model(run_dir / state["checkpoint"])
    else:
        model = (
            starting_model(init_model_file(settings.init))
            if settings.init
            else build_line_model(settings)
        )
        compile_line_model(model, settings)
    callbacks = [*progress_shown(verbose), LineCheckpoint(run_dir, state, validation, verbose)]
    if state["epoch"] < settings.epochs:
        lines = source or train.source(settings)
        model.fit(
            training_dataset(
                lines, train.images, train.labels, settings, state["epoch"], background
            ),
            epochs=settings.epochs,
            initial_epoch=state["epoch"],
            steps_per_epoch=settings.steps_per_epoch,
            callbacks=callbacks,
            shuffle=False,  # every epoch's lines are new already
            verbose=0,  # Progress shows it
        )
    finish_run(run_dir, state)
    return run_dir


def _check_run_dir(run_dir: Path, settings: LineTrainSettings) -> None:
    """Refuse a complete run, or one with other settings (a run with these is resumed)."""
    if (run_dir / "metrics.json").exists():
        raise DigitrecError(f"{run_dir} holds a complete run; choose another directory")
    if (run_dir / "run.json").exists():
        recorded = read_json(run_dir / "run.json").get("settings")
        if _with_defaults(recorded) != asdict(settings):
            raise DigitrecError(
                f"{run_dir} holds a run with other settings ({recorded}); resume it with those "
                "settings or choose another directory"
            )


def _with_defaults(recorded: Any) -> dict[str, Any] | None:
    """Recorded settings with the defaults of settings added since (a run from before them)."""
    try:
        return asdict(LineTrainSettings(**recorded))
    except TypeError:
        return None


def _start_or_resume(run_dir: Path, settings: LineTrainSettings, data: Dataset) -> dict[str, Any]:
    """The run's state: the saved one, or a new one (``run.json`` written for a new run)."""
    if not (run_dir / "run.json").exists():
        record = run_record(TrainConfig(), data)
        del record["config"]  # the line settings replace the digit classifier's
        write_json(run_dir / "run.json", {"settings": asdict(settings), **record})
    if (run_dir / STATE_FILE).exists():
        return read_json(run_dir / STATE_FILE)
    return {"epoch": 0, "checkpoint": None, "history": {}}


def compile_line_model(model: keras.Model, settings: LineTrainSettings) -> None:
    """Adam on the CTC loss, with the configured learning-rate schedule."""
    schedule = TrainConfig(
        epochs=settings.epochs,
        learning_rate=settings.learning_rate,
        schedule=settings.schedule,
        warmup=settings.warmup,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(schedule, settings.steps_per_epoch)),
        loss=LineCTCLoss(),
    )


def training_dataset(
    source: LineSource,
    images: np.ndarray,
    labels: np.ndarray,
    settings: LineTrainSettings,
    first_epoch: int,
    background: bool = True,
) -> Any:
    """The batches of training lines from ``first_epoch`` to the last (``training_batches``),
    made in a worker process (``background``; the source must then pickle) or in this one."""
    args = (source, images, labels, settings.seed, range(first_epoch, settings.epochs))
    args += (settings.steps_per_epoch, settings.batch_size, settings.training_style())
    args += (settings.stride,)
    return batch_dataset(training_batches, args, background)


def batch_dataset(
    produce: Callable[..., Iterator[tuple[np.ndarray, np.ndarray]]],
    args: tuple[Any, ...],
    background: bool = True,
) -> Any:
    """The (inputs, targets) batches of ``produce(*args)`` as a ``tf.data.Dataset``, made in a
    worker process (``background``: ``produce`` and its arguments must pickle) or in this one."""
    import tensorflow as tf

    def generate() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        yield from in_background(produce, *args) if background else produce(*args)

    signature = (
        tf.TensorSpec((None, HEIGHT, None, 1), tf.float32),
        tf.TensorSpec((None, None), tf.float32),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)


def validation_batches(
    source: LineSource, images: np.ndarray, labels: np.ndarray, settings: LineTrainSettings
) -> list[tuple[np.ndarray, list[int], list[str]]]:
    """The validation lines, the same every epoch: batches of (inputs, frame counts, texts)."""
    samples = source(images, labels, settings.val_lines, settings.seed, style="train")
    return fixed_batches(list(prepared(samples, settings.stride)), settings.stride)


def fixed_batches(
    lines: list[tuple[PreparedLine, str]], stride: int
) -> list[tuple[np.ndarray, list[int], list[str]]]:
    """Prepared lines and their texts in batches of similar width, to read every epoch:
    (inputs, frame counts, texts)."""
    lines = sorted(lines, key=lambda item: item[0].image.shape[1])
    groups = [lines[i : i + VAL_BATCH] for i in range(0, len(lines), VAL_BATCH)]
    result = []
    for group in groups:
        inputs, targets = batch_arrays(group, stride)
        result.append((inputs, targets[:, 1].astype(int).tolist(), [t for _, t in group]))
    return result


def exact_accuracy(
    posteriors: list[np.ndarray], batches: list[tuple[np.ndarray, list[int], list[str]]]
) -> float:
    """The fraction of lines whose best-path reading is their text exactly."""
    right = total = 0
    for frames, (_, counts, texts) in zip(posteriors, batches, strict=True):
        for line, count, text in zip(frames, counts, texts, strict=True):
            right += decode_text(line[:count]) == text
            total += 1
    return right / max(total, 1)


class LineCheckpoint(EpochCheckpoint):
    """After every epoch: read the validation lines, keep the best epoch's model (by exact
    lines) as a checkpoint of its own, then save the epoch's checkpoint and the state."""

    def __init__(
        self,
        run_dir: Path,
        state: dict[str, Any],
        validation: list[tuple[np.ndarray, list[int], list[str]]],
        verbose: bool,
    ):
        super().__init__(run_dir, state)
        self.validation = validation
        self.verbose = verbose

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        posteriors = [np.asarray(self.model(x, training=False)) for x, _, _ in self.validation]
        logs = {**(logs or {}), "val_exact": exact_accuracy(posteriors, self.validation)}
        previous = self.state.get("best_checkpoint")
        if logs["val_exact"] > self.state.get("best_exact", -1.0):
            name = f"{CHECKPOINT_DIR}/best-{epoch + 1:03d}.keras"
            with atomic_path(self.run_dir / name, suffix=".keras") as tmp:
                self.model.save(tmp)
            self.state.update(
                best_checkpoint=name, best_epoch=epoch + 1, best_exact=logs["val_exact"]
            )
        if self.verbose:
            print(f"epoch {epoch + 1}: {logs['val_exact']:.2%} of validation lines read exactly")
        super().on_epoch_end(epoch, logs)
        if previous and previous != self.state["best_checkpoint"]:
            (self.run_dir / previous).unlink(missing_ok=True)


def finish_run(run_dir: Path, state: dict[str, Any]) -> None:
    """The best epoch's model as ``model.keras``, the metrics, and no checkpoints left."""
    best = run_dir / state["best_checkpoint"]
    with atomic_path(run_dir / "model.keras", suffix=".keras") as tmp:
        tmp.write_bytes(best.read_bytes())
    history = state["history"]
    write_json(
        run_dir / "metrics.json",
        {
            "best_epoch": state["best_epoch"],
            "val_exact": state["best_exact"],
            "epochs": state["epoch"],
            "train_seconds": float(sum(history.get("epoch_seconds", []))),
            "history": history,
        },
    )
    for checkpoint in (run_dir / CHECKPOINT_DIR).glob("*.keras"):
        checkpoint.unlink()
