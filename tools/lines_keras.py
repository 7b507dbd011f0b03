"""Rebuild a shipped line model as Keras weights from its ONNX file, the only copy left of the
networks, so that ``digitrec train-lines --init NAME`` can fine-tune it and export it with the
same filter: ``default`` (lines.onnx) as src/digitrec/assets/lines.keras and its line filter as
lines-filter.keras, ``documents`` as documents.keras and documents-filter.keras.

The ONNX graph (tf2onnx) keeps every weight but has folded each batch normalization into the
convolution before it (kernel ``W · γ/√(σ²+ε)``, bias ``β − μ·γ/√(σ²+ε)``); γ, β, μ and σ²
cannot be told apart again. Each batch normalization is therefore rebuilt as the identity plus
the folded bias (moving mean 0, moving variance 1 − ε, γ 1, β the bias) after the folded
kernel: inference computes what the ONNX graph does, but training mode, which normalizes with
each batch's statistics, would not. Fine-tuning from these weights keeps every batch
normalization frozen, in inference mode (``train-lines --strings`` does). The bidirectional LSTM's
weights are ONNX's W, R and B per direction with its gates (i, o, f, c) reordered to Keras's
(i, f, c, o) and the two biases summed; the filter has no normalization and maps one to one.

The files are written only if Keras gives ONNX Runtime's outputs (frame posteriors and the
filter's "writing") within 1e-4 on lines made from MNIST's validation split.

    PYTHONPATH=src DIGITREC_DATA_DIR=/path/to/mnist python tools/lines_keras.py [NAME]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np
import onnx
from default_keras import batch_norms, hwio, initializers, layers_of

from digitrec.data import load_dataset, split_validation
from digitrec.errors import ModelError
from digitrec.files import atomic_path
from digitrec.read.line_reader import LineReader
from digitrec.read.loader import SHIPPED_LINE_MODELS
from digitrec.training.line_batches import batch_arrays, prepared
from digitrec.training.line_export import check_outputs, joined
from digitrec.training.line_filter import build_line_filter
from digitrec.training.line_model import build_line_model
from digitrec.training.line_settings import SHIPPED_FILTERS, SHIPPED_KERAS, LineTrainSettings
from digitrec.training.line_training import default_source

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "src" / "digitrec" / "assets"
PARITY_LINES = 256
ONNX_GATES = "iofc"
KERAS_GATES = "ifco"


def is_filter(node: onnx.NodeProto) -> bool:
    return "line_filter" in node.input[0] or "line_filter" in node.output[0]


def keras_gates(weights: np.ndarray) -> np.ndarray:
    """ONNX's stacked gate blocks (4·units first) in Keras's order, transposed to (in, 4·units)."""
    blocks = dict(zip(ONNX_GATES, np.split(weights, 4, axis=0), strict=True))
    return np.concatenate([blocks[gate] for gate in KERAS_GATES], axis=0).T


def lstm_weights(values: dict[str, np.ndarray], node: onnx.NodeProto) -> list[np.ndarray]:
    """A bidirectional ONNX LSTM's W, R, B as Keras's Bidirectional LSTM's weights: for the
    forward then the backward direction, kernel, recurrent kernel and bias."""
    w, r, b = (values[name] for name in node.input[1:4])
    weights = []
    for direction in range(2):
        input_bias, recurrent_bias = np.split(b[direction], 2)
        bias = keras_gates((input_bias + recurrent_bias)[:, None])[0]
        weights += [keras_gates(w[direction]), keras_gates(r[direction]), bias]
    return weights


def build_lines(model: onnx.ModelProto) -> keras.Model:
    """The line recognizer with the ONNX weights (``build_line_model`` of its settings)."""
    metadata = {prop.key: json.loads(prop.value) for prop in model.metadata_props}
    keras_model = build_line_model(LineTrainSettings(**metadata["training_settings"]))
    values = initializers(model)
    nodes = [node for node in model.graph.node if not is_filter(node)]
    convs = [node for node in nodes if node.op_type == "Conv"]
    for layer, norm, node in zip(
        layers_of(keras_model, keras.layers.Conv2D), batch_norms(keras_model), convs, strict=True
    ):
        layer.set_weights([hwio(values[node.input[1]])])
        bias = values[node.input[2]]
        ones = np.ones_like(bias)
        norm.set_weights([ones, bias, np.zeros_like(bias), ones - norm.epsilon])
    (lstm,) = [node for node in nodes if node.op_type == "LSTM"]
    layers_of(keras_model, keras.layers.Bidirectional)[0].set_weights(lstm_weights(values, lstm))
    kernel = next(values[n.input[1]] for n in nodes if n.op_type == "MatMul")
    bias = next(values[n.input[1]] for n in nodes if n.op_type == "Add" and n.input[1] in values)
    keras_model.get_layer("posteriors").set_weights([kernel, bias])
    return keras_model


def build_filter(model: onnx.ModelProto) -> keras.Model:
    """The line filter with the ONNX weights (``build_line_filter`` of its width)."""
    values = initializers(model)
    nodes = [node for node in model.graph.node if is_filter(node)]
    kernels = [hwio(values[node.input[1]]) for node in nodes if node.op_type == "Conv"]
    line_filter = build_line_filter(width=kernels[0].shape[-1])
    for layer, kernel in zip(layers_of(line_filter, keras.layers.Conv2D), kernels, strict=True):
        layer.set_weights([kernel])
    dense = next(values[n.input[1]] for n in nodes if n.op_type == "MatMul")
    bias = next(values[n.input[1]] for n in nodes if n.op_type == "Add")
    line_filter.get_layer("writing").set_weights([dense, bias])
    return line_filter


def parity_lines(settings: LineTrainSettings) -> np.ndarray:
    """A batch of lines made from MNIST's validation split, as the reader prepares them."""
    data = load_dataset(settings.dataset, download=False, progress=False)
    _, _, x_val, y_val = split_validation(data.train_images, data.train_labels, settings.val_size)
    samples = default_source()(x_val, y_val, PARITY_LINES, settings.seed, style="validation")
    inputs, _ = batch_arrays(list(prepared(samples, settings.stride)), settings.stride)
    return inputs


def main(name: str = "default") -> int:
    onnx_file = ASSETS / SHIPPED_LINE_MODELS[name]
    model = onnx.load(onnx_file)
    lines, line_filter = build_lines(model), build_filter(model)
    reader = LineReader.load(onnx_file)
    inputs = parity_lines(LineTrainSettings(**reader.metadata["training_settings"]))
    expected = [np.asarray(output) for output in joined(lines, line_filter)(inputs)]
    try:
        difference = check_outputs(expected, reader.outputs(inputs), onnx_file)
    except ModelError as exc:
        print(f"{exc}: {SHIPPED_KERAS[name]} not written", file=sys.stderr)
        return 1
    print(f"largest difference from the ONNX model: {difference:.2e} on {len(inputs)} lines")
    written = [(lines, SHIPPED_KERAS[name]), (line_filter, SHIPPED_FILTERS[name])]
    for network, file in written:
        with atomic_path(ASSETS / file, suffix=".keras") as tmp:
            network.save(tmp)
        print(f"wrote {file} ({(ASSETS / file).stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
