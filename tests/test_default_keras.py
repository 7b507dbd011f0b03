"""The shipped default model as Keras weights (assets/default.keras, made by
tools/default_keras.py): found without TensorFlow, the same network as default.onnx, and ready
to fine-tune (training mode starts from the model's own behaviour)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from digitrec.assets import default_keras_path
from digitrec.data import as_model_input
from digitrec.recognizer import Recognizer

SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.fixture(scope="module")
def keras_model():
    import keras

    return keras.saving.load_model(default_keras_path())


def test_the_keras_file_is_found_in_the_package_without_importing_tensorflow():
    code = (
        "import sys, zipfile\n"
        "from digitrec.assets import default_keras_path\n"
        "path = default_keras_path()\n"
        "print(path)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path == SRC / "digitrec" / "assets" / "default.keras"
    assert {"config.json", "model.weights.h5"} <= set(zipfile.ZipFile(path).namelist())
    assert path.stat().st_size < 1_000_000


def test_the_keras_weights_give_the_onnx_models_raw_outputs_on_1000_test_images(keras_model, mnist):
    images = as_model_input(mnist.test_images[:1000])
    session = Recognizer.load("default").session
    raw = session.run(None, {session.get_inputs()[0].name: images})[0]  # before temperature
    assert np.abs(keras_model.predict(images, verbose=0) - raw).max() <= 1e-5


def test_in_training_mode_the_model_reads_training_digits_as_it_does_in_inference(
    keras_model, mnist
):
    """Training mode normalizes with the batch's statistics: the batch normalizations' moving
    statistics must be those of their inputs on MNIST, or fine-tuning starts from a wreck."""
    from digitrec.models import build_model

    without_dropout = build_model("best", dropout=0.0)
    without_dropout.set_weights(keras_model.get_weights())
    images = as_model_input(mnist.train_images[20_000:21_000])
    inference = keras_model.predict(images, verbose=0).argmax(1)
    training = np.asarray(without_dropout(images, training=True)).argmax(1)
    assert np.mean(training == inference) >= 0.99
    assert np.mean(training == mnist.train_labels[20_000:21_000]) >= 0.99
