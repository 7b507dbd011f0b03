"""The shipped line models as Keras weights (assets/lines.keras, documents.keras and their
filters, lines-filter.keras and documents-filter.keras, made by tools/lines_keras.py): found
without TensorFlow, and the same networks as their ONNX files."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from fresh_python import SRC, run_importing_none_of

from digitrec.data import split_validation
from digitrec.read.line_reader import LineReader
from digitrec.training.line_settings import (
    SHIPPED_FILTERS,
    SHIPPED_KERAS,
    shipped_keras_path,
)


def test_the_keras_files_are_found_in_the_package_without_importing_tensorflow():
    code = (
        "from digitrec.training.line_settings import SHIPPED_FILTERS, SHIPPED_KERAS, "
        "shipped_keras_path\n"
        "for name in [*SHIPPED_KERAS.values(), *SHIPPED_FILTERS.values()]:\n"
        "    print(shipped_keras_path(name))"
    )
    result = run_importing_none_of(("tensorflow", "keras"), code)
    assert result.returncode == 0, result.stderr.decode()
    paths = result.stdout.decode().split()
    names = ("lines.keras", "documents.keras", "lines-filter.keras", "documents-filter.keras")
    assert paths == [str(SRC / "digitrec" / "assets" / n) for n in names]
    for path in paths:
        assert {"config.json", "model.weights.h5"} <= set(zipfile.ZipFile(path).namelist())


@pytest.mark.parametrize("shipped", SHIPPED_KERAS)
def test_keras_gives_the_onnx_line_readers_posteriors_and_writing_on_validation_lines(
    shipped, mnist
):
    import keras

    from digitrec.synth.pages import line_samples
    from digitrec.training.line_batches import batch_arrays, prepared
    from digitrec.training.line_export import joined

    lines = keras.saving.load_model(shipped_keras_path(SHIPPED_KERAS[shipped]))
    line_filter = keras.saving.load_model(shipped_keras_path(SHIPPED_FILTERS[shipped]))
    _, _, x_val, y_val = split_validation(mnist.train_images, mnist.train_labels, 5000)
    samples = line_samples(x_val, y_val, 24, seed=7, style="validation")
    inputs, _ = batch_arrays(list(prepared(samples)))
    posteriors, writing = (np.asarray(o) for o in joined(lines, line_filter)(inputs))
    expected_posteriors, expected_writing = LineReader.load(shipped).outputs(inputs)
    assert np.abs(posteriors - expected_posteriors).max() <= 1e-4
    assert np.abs(writing - expected_writing).max() <= 1e-4
    assert posteriors.argmax(-1).std() > 0  # lines read, not all blanks


@pytest.mark.parametrize("name", [*SHIPPED_KERAS.values(), *SHIPPED_FILTERS.values()])
def test_the_keras_files_hold_the_line_networks_architectures(name):
    import keras

    model = keras.saving.load_model(shipped_keras_path(name))
    assert model.name == ("line_filter" if name.endswith("-filter.keras") else "crnn_lstm")
