"""The CTC line recognizer's Keras model and its loss (its settings: ``line_settings``).

A compact CNN collapses the line's height to one and keeps one time step per ``stride`` columns;
a bidirectional LSTM (``head="lstm"``) or two 1-D convolutions (``head="conv"``) then see the
neighbouring steps, and a softmax gives each step's posteriors of the ten digits and the CTC
blank. The batches it trains on are made by ``line_batches``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import layers

from digitrec.read.line_reader import ALPHABET, BLANK, HEIGHT
from digitrec.training.line_settings import LineTrainSettings
from digitrec.training.model_setup import precision_policy


def build_line_model(settings: LineTrainSettings) -> keras.Model:
    """Frame posteriors (N, width / stride, 11) of line images (N, HEIGHT, width, 1)."""
    inputs = keras.Input((HEIGHT, None, 1), name="line")
    x = inputs
    w = settings.width
    second = (2, settings.stride // 2)  # the second pooling halves the width at stride 4 only
    with precision_policy(settings.precision):
        for filters, pool in ((w, (2, 2)), (2 * w, second), (4 * w, (2, 1)), (4 * w, (2, 1))):
            x = _conv_bn(filters, 3, "same")(x)
            x = layers.MaxPooling2D(pool)(x)
        x = _conv_bn(settings.units, (HEIGHT // 16, 1), "valid")(x)  # the height collapses to 1
    x = layers.Reshape((-1, settings.units))(x)
    x = layers.Dropout(settings.dropout)(x)
    if settings.head == "lstm":
        x = layers.Bidirectional(layers.LSTM(settings.units // 2, return_sequences=True))(x)
    else:
        for _ in range(2):
            x = _conv_bn(settings.units, 5, "same", layers.Conv1D)(x)
    x = layers.Dropout(settings.dropout)(x)
    outputs = layers.Dense(len(ALPHABET) + 1, activation="softmax", name="posteriors")(x)
    return keras.Model(inputs, outputs, name=f"crnn_{settings.head}")


def _conv_bn(filters: int, kernel: Any, padding: str, conv: type = layers.Conv2D) -> Callable:
    """Convolution, batch normalization, ReLU, as one callable."""
    block = [conv(filters, kernel, padding=padding, use_bias=False)]
    block += [layers.BatchNormalization(), layers.ReLU()]

    def apply(x: Any) -> Any:
        for layer in block:
            x = layer(x)
        return x

    return apply


@keras.saving.register_keras_serializable(package="digitrec")
class LineCTCLoss(keras.losses.Loss):
    """CTC loss of frame posteriors. The targets pack each line's label count, frame count and
    labels in one row (``encode_targets``), as Keras passes the loss only targets and outputs."""

    def __init__(self, name: str = "line_ctc", **kwargs: Any):
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ops = keras.ops
        targets = ops.cast(y_true, "int32")
        log_posteriors = ops.log(ops.clip(y_pred, 1e-7, 1.0))
        return ops.ctc_loss(
            targets[:, 2:], log_posteriors, targets[:, 0], targets[:, 1], mask_index=BLANK
        )
