"""The CTC line recognizer's Keras model, its loss and its training settings.

A compact CNN collapses the line's height to one and keeps one time step per ``stride`` columns;
a bidirectional LSTM (``head="lstm"``) or two 1-D convolutions (``head="conv"``) then see the
neighbouring steps, and a softmax gives each step's posteriors of the ten digits and the CTC
blank. The batches it trains on are made by ``line_batches``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
from keras import layers

from digitrec.errors import DigitrecError
from digitrec.read.line_reader import ALPHABET, BLANK, HEIGHT, STRIDE
from digitrec.synth.style import WriterShapes
from digitrec.training.config import PRECISIONS
from digitrec.training.model_setup import precision_policy

HEADS = ("lstm", "conv")
STRIDES = (2, STRIDE)  # model pixels per time step: a 2x2 and a 2x1 pooling, or two 2x2 ones


@dataclass
class LineTrainSettings(WriterShapes):
    """Every setting of a line recognizer's training run; ``run.json`` stores it whole (with
    ``WriterShapes``: the training lines' other writers' shapes)."""

    # "lstm" (bidirectional) or "conv" (two 1-D convolutions) over the time steps. After the same
    # 800 steps, the LSTM read 75.8% of 2,000 new validation lines exactly, the convolutions
    # 72.0% (156 lines only the LSTM read, 80 only the convolutions), at the same speed in
    # ONNX Runtime; a training step costs about a third more.
    head: str = "lstm"
    width: int = 32  # filters of the first convolution; the next ones have 2x and 4x as many
    units: int = 128  # features per time step, and the LSTM's (both directions) or 1-D convs'
    # Model pixels per time step: 4, or 2 (twice the steps, for narrow digits such as a 1 in a
    # touching number; a training step takes about 1.3x as long).
    stride: int = STRIDE
    dropout: float = 0.2
    epochs: int = 12
    steps_per_epoch: int = 200
    batch_size: int = 32
    learning_rate: float = 3e-3
    schedule: str = "onecycle"  # as train.learning_rate: "constant", "cosine" or "onecycle"
    warmup: float = 0.1
    seed: int = 0
    dataset: str = "mnist"  # whose training images the lines are made of
    val_lines: int = 1000  # lines made of validation digits, to choose the best epoch
    val_size: int = 5000  # the last training images: the validation split
    # "bfloat16": the convolutions compute in bfloat16 (float32 weights), the head and the
    # posteriors in float32; the exported model computes in float32 throughout.
    precision: str = "float32"

    def check(self) -> None:
        """Raise ``DigitrecError`` for settings no run can use."""
        if self.head not in HEADS:
            raise DigitrecError(f"unknown head {self.head!r}; known: {', '.join(HEADS)}")
        if self.stride not in STRIDES:
            raise DigitrecError(
                f"stride must be one of {', '.join(map(str, STRIDES))}, not {self.stride}"
            )
        if self.precision not in PRECISIONS:
            raise DigitrecError(
                f"unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)}"
            )
        counts = ("width", "units", "epochs", "steps_per_epoch", "batch_size", "val_lines")
        bad = [f"{name} {getattr(self, name)}" for name in counts if getattr(self, name) < 1]
        if bad:
            raise DigitrecError(f"these settings must be at least 1: {', '.join(bad)}")
        if not 0 <= self.dropout < 1:
            raise DigitrecError(f"dropout must be in [0, 1), not {self.dropout}")
        self.training_style()  # refuses shapes out of range


# --- the model -----------------------------------------------------------------------------------


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
