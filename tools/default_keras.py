"""Rebuild the shipped default model as Keras weights (src/digitrec/assets/default.keras) from
its ONNX file, the only copy left of the network.

The ONNX graph (tf2onnx) keeps each dense and convolution weight, but has folded every batch
normalization that follows a convolution into the convolution: its kernel holds
``W · γ/√(σ²+ε)`` and its bias ``β − μ·γ/√(σ²+ε)``; the one after the first dense layer is kept
as a multiply and an add. γ, β, μ and σ² cannot be told apart again, so each batch normalization
is given an equivalent parametrisation: its moving mean and variance are the statistics of its
input on MNIST training images (the first 10,000, none of the validation split), and γ, β are
chosen so that inference computes exactly what the ONNX graph computes. Training mode, which
normalizes with each batch's statistics, then starts from the model's own behaviour, as it
would for the original network; with mean 0 and variance 1 it would not.

The result must give the ONNX model's raw outputs (before temperature scaling) within 1e-5 on
the first 1,000 MNIST test images; it is written only if it does.

    PYTHONPATH=src DIGITREC_DATA_DIR=/path/to/mnist python tools/default_keras.py
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from digitrec.data import as_model_input, load_dataset
from digitrec.files import atomic_path
from digitrec.training.models import build_model

ROOT = Path(__file__).resolve().parent.parent
ONNX_FILE = ROOT / "src" / "digitrec" / "assets" / "default.onnx"
KERAS_FILE = ROOT / "src" / "digitrec" / "assets" / "default.keras"
STATISTICS_IMAGES = 10_000  # the first training images: the validation split is the last 5,000
PARITY_IMAGES = 1_000
TOLERANCE = 1e-5
BATCH = 500


@dataclass
class Affine:
    """What one batch normalization does at inference: ``x · scale + shift`` per channel."""

    scale: np.ndarray
    shift: np.ndarray


@dataclass
class OnnxWeights:
    """The default network's weights as the ONNX graph holds them, in Keras layouts."""

    kernels: list[np.ndarray]  # the convolutions' (HWIO, batch normalization's scale folded in)
    norms: list[Affine]  # each batch normalization's affine map, in order
    dense: list[np.ndarray]  # the dense layers' kernels (in, out)
    bias: np.ndarray  # the last dense layer's bias


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The graph's weights by name."""
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def hwio(kernel: np.ndarray) -> np.ndarray:
    """An ONNX convolution kernel (OIHW) in Keras's layout (HWIO)."""
    return kernel.transpose(2, 3, 1, 0)


def onnx_weights(model: onnx.ModelProto) -> OnnxWeights:
    """Walk the graph in order, reading each layer's initializers."""
    values = initializers(model)
    kernels, norms, dense, bias = [], [], [], None
    for node in model.graph.node:
        if node.op_type == "Conv":
            weight, folded_shift = values[node.input[1]], values[node.input[2]]
            kernels.append(hwio(weight))
            norms.append(Affine(np.ones_like(folded_shift), folded_shift))
        elif node.op_type == "MatMul":
            dense.append(values[node.input[1]])
        elif node.op_type == "Mul":  # the batch normalization after the first dense layer
            norms.append(Affine(values[node.input[1]], np.zeros(0, np.float32)))
        elif node.op_type == "Add" and norms[-1].shift.size == 0:  # the Mul's shift
            norms[-1].shift = values[node.input[1]]
        elif node.op_type == "Add":  # the last dense layer's bias
            bias = values[node.input[1]]
    return OnnxWeights(kernels, norms, dense, bias)


def build_keras(model: onnx.ModelProto) -> keras.Model:
    """The ``best`` network with the ONNX weights; each batch normalization as its affine map
    (moving mean 0, variance 1 − ε, so that it divides by 1)."""
    metadata = {prop.key: json.loads(prop.value) for prop in model.metadata_props}
    config = metadata["training_config"]
    keras_model = build_model(config["model"], **config["model_args"])
    weights = onnx_weights(model)
    convs = layers_of(keras_model, keras.layers.Conv2D)
    denses = layers_of(keras_model, keras.layers.Dense)
    for layer, kernel in zip(convs, weights.kernels, strict=True):
        layer.set_weights([kernel])
    denses[0].set_weights([weights.dense[0]])
    denses[1].set_weights([weights.dense[1], weights.bias])
    for layer, affine in zip(batch_norms(keras_model), weights.norms, strict=True):
        zero = np.zeros_like(affine.shift)
        layer.set_weights([affine.scale, affine.shift, zero, 1 - zero - layer.epsilon])
    return keras_model


def layers_of(model: keras.Model, kind: type) -> list:
    return [layer for layer in model.layers if isinstance(layer, kind)]


def batch_norms(model: keras.Model) -> list:
    return layers_of(model, keras.layers.BatchNormalization)


def input_statistics(model: keras.Model, images: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Mean and variance of each batch normalization's input per channel, over ``images``."""
    norms = batch_norms(model)
    probe = keras.Model(model.inputs, [layer.input for layer in norms])
    sums = [np.zeros(layer.input.shape[-1]) for layer in norms]
    squares = [np.zeros_like(total) for total in sums]
    count = np.zeros(len(norms))
    for start in range(0, len(images), BATCH):
        outputs = probe.predict(images[start : start + BATCH], verbose=0)
        for k, output in enumerate(outputs):
            values = output.reshape(-1, output.shape[-1]).astype(np.float64)
            sums[k] += values.sum(axis=0)
            squares[k] += (values * values).sum(axis=0)
            count[k] += len(values)
    return [
        (total / n, np.maximum(square / n - (total / n) ** 2, 0))
        for total, square, n in zip(sums, squares, count, strict=True)
    ]


def match_statistics(model: keras.Model, images: np.ndarray) -> None:
    """Give each batch normalization its input's statistics, keeping its inference map:
    γ/√(σ²+ε) = scale and β − μ·scale = shift."""
    for layer, (mean, variance) in zip(
        batch_norms(model), input_statistics(model, images), strict=True
    ):
        gamma, beta, _, _ = (np.asarray(w, np.float64) for w in layer.get_weights())
        scale, shift = gamma, beta  # as build_keras set them: the divisor is 1
        moving_variance = np.maximum(variance - layer.epsilon, 0)
        layer.set_weights(
            [
                (scale * np.sqrt(moving_variance + layer.epsilon)).astype(np.float32),
                (shift + scale * mean).astype(np.float32),
                mean.astype(np.float32),
                moving_variance.astype(np.float32),
            ]
        )


def onnx_outputs(images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(ONNX_FILE), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def main() -> int:
    mnist = load_dataset("mnist", download=False, progress=False)
    model = build_keras(onnx.load(ONNX_FILE))
    match_statistics(model, as_model_input(mnist.train_images[:STATISTICS_IMAGES]))
    test = as_model_input(mnist.test_images[:PARITY_IMAGES])
    difference = float(np.abs(model.predict(test, verbose=0) - onnx_outputs(test)).max())
    print(f"largest difference from the ONNX model: {difference:.2e} on {len(test)} test images")
    if difference > TOLERANCE:
        print(f"over {TOLERANCE:g}: {KERAS_FILE} not written", file=sys.stderr)
        return 1
    accuracy = float(
        np.mean(
            model.predict(as_model_input(mnist.test_images), verbose=0).argmax(1)
            == mnist.test_labels
        )
    )
    print(f"test accuracy: {accuracy:.4%}")
    with atomic_path(KERAS_FILE, suffix=".keras") as tmp:
        model.save(tmp)
    print(f"wrote {KERAS_FILE.relative_to(ROOT)} ({KERAS_FILE.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
