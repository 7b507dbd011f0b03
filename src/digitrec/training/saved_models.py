"""Loading trained models: a Keras model from a run directory or ``.keras`` file, or any model
(also an exported ``.onnx`` file or ``default``, the packaged one) as a function from images to
probabilities. Evaluation and export share it; it needs neither scikit-learn nor matplotlib."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from digitrec.data import as_model_input
from digitrec.errors import ModelError

Classifier = Callable[[np.ndarray], np.ndarray]


def is_exported(source: str | Path) -> bool:
    """Whether ``source`` names an exported ONNX model: a ``.onnx`` file or ``default``."""
    return str(source) == "default" or Path(source).suffix == ".onnx"


def predict_keras(model: Any, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities of a Keras model for uint8 images (N, 28, 28)."""
    return np.asarray(model.predict(as_model_input(images), batch_size=batch_size, verbose=0))


def keras_model_file(source: str | Path) -> tuple[Path, Path | None]:
    """The Keras model file of a run directory or ``.keras`` file, and the run directory if
    any; a ``ModelError`` when there is none, found without loading anything."""
    if is_exported(source):
        raise ModelError(
            f"{source}: this needs a Keras model (a run directory or .keras file); "
            f"{'the packaged model' if str(source) == 'default' else 'an .onnx file'} is already "
            "exported and has no Keras model to load"
        )
    path = Path(source)
    run_dir = path if path.is_dir() else None
    model_file = path / "model.keras" if run_dir else path
    if not model_file.is_file():
        raise ModelError(f"{source}: no model found (expected a run directory or .keras file)")
    return model_file, run_dir


def check_model_source(source: str | Path) -> Path | None:
    """The run directory ``source`` names (None for a model file or ``default``), checked
    before anything heavy is loaded: a model that is not there is a ``ModelError`` now."""
    if not is_exported(source):
        return keras_model_file(source)[1]
    if str(source) != "default" and not Path(source).is_file():
        raise ModelError(f"{source}: no such model file")
    return None


def load_keras(source: str | Path, tta: bool = False) -> tuple[Any, Path | None]:
    """A Keras model from a run directory or ``.keras`` file, and the run directory if any;
    with ``tta``, wrapped to average its predictions over small shifts (``models.with_tta``)."""
    model_file, run_dir = keras_model_file(source)
    import keras

    try:
        model = keras.saving.load_model(model_file)
    except Exception as exc:  # Keras raises many types for a bad file
        raise ModelError(f"{model_file}: cannot load model: {exc}") from None
    if tta:
        from digitrec.training.models import with_tta

        model = with_tta(model)
    return model, run_dir


def load_classifier(source: str | Path, tta: bool = False) -> tuple[Classifier, Path | None]:
    """A function uint8 images -> probabilities for a run directory, ``.keras``/``.onnx`` file
    or ``default`` (the packaged model); also the run directory when there is one."""
    if not is_exported(source):
        model, run_dir = load_keras(source, tta)
        return lambda images: predict_keras(model, images), run_dir
    if tta:
        raise ModelError(
            f"{source}: test-time augmentation needs a Keras model (a run directory or "
            ".keras file); export one with --tta to get it in ONNX"
        )
    from digitrec.read.recognizer import Recognizer

    recognizer = Recognizer.load(str(source))
    return lambda images: recognizer.predict_proba(as_model_input(images)), None


def initial_model(init: str) -> Any:
    """The Keras model fine-tuning starts from: ``default`` (the shipped model's Keras weights),
    a completed run directory or a ``.keras`` file; ``ModelError`` naming what was expected."""
    return load_keras(initial_model_file(init))[0]


def initial_model_file(init: str) -> Path:
    """The Keras file ``--init`` names, found without loading it: ``default`` (the shipped
    model's), a completed run directory or a ``.keras`` file; ``ModelError`` naming what was
    expected."""
    if init == "default":
        from digitrec.assets import default_keras_path

        return default_keras_path()
    path = Path(init)
    if path.is_dir() and not (path / "model.keras").is_file():
        raise ModelError(
            f"--init {init}: the run directory has no model.keras (is the run finished? "
            "continue it with digitrec train --resume)"
        )
    if path.is_file() and path.suffix != ".keras":
        raise ModelError(
            f"--init {init}: not a Keras model file; give 'default', a run directory or a "
            ".keras file"
        )
    if not path.exists():
        raise ModelError(
            f"--init {init}: no such file or folder; give 'default', a run directory or a "
            ".keras file"
        )
    return path
