"""The shipped default model as Keras weights (assets/default.keras, made by
tools/default_keras.py): found without TensorFlow, the same network as default.onnx, and ready
to fine-tune (training mode starts from the model's own behaviour)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from fresh_python import SRC, run_importing_none_of

from digitrec.assets import default_keras_path
from digitrec.data import as_model_input
from digitrec.read.loader import load_model


@pytest.fixture(scope="module")
def keras_model():
    import keras

    return keras.saving.load_model(default_keras_path())


def test_the_keras_file_is_found_in_the_package_without_importing_tensorflow():
    code = "from digitrec.assets import default_keras_path\nprint(default_keras_path())"
    result = run_importing_none_of(("tensorflow", "keras"), code)
    assert result.returncode == 0, result.stderr.decode()
    path = Path(result.stdout.decode().strip())
    assert path == SRC / "digitrec" / "assets" / "default.keras"
    assert {"config.json", "model.weights.h5"} <= set(zipfile.ZipFile(path).namelist())
    assert path.stat().st_size < 1_000_000


def test_the_keras_weights_give_the_onnx_models_raw_outputs_on_1000_test_images(keras_model, mnist):
    images = as_model_input(mnist.test_images[:1000])
    session = load_model("default").session
    raw = session.run(None, {session.get_inputs()[0].name: images})[0]  # before temperature
    assert np.abs(keras_model.predict(images, verbose=0) - raw).max() <= 1e-5


def test_in_training_mode_the_model_reads_training_digits_as_it_does_in_inference(
    keras_model, mnist
):
    """Training mode normalizes with the batch's statistics: the batch normalizations' moving
    statistics must be those of their inputs on MNIST, or fine-tuning starts from a wreck."""
    from digitrec.training.models import build_model

    without_dropout = build_model("best", dropout=0.0)
    without_dropout.set_weights(keras_model.get_weights())
    images = as_model_input(mnist.train_images[20_000:21_000])
    inference = keras_model.predict(images, verbose=0).argmax(1)
    training = np.asarray(without_dropout(images, training=True)).argmax(1)
    assert np.mean(training == inference) >= 0.99
    assert np.mean(training == mnist.train_labels[20_000:21_000]) >= 0.99
