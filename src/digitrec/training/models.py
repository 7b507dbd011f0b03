"""The architecture registry: each model is one builder function plus its default training recipe.

Every model takes float32 images of shape (28, 28, 1) in [0, 1], white ink on black (MNIST's
convention), and returns class probabilities (softmax).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from digitrec.errors import DigitrecError


class _LazyModule:
    """A module imported on first use, so that the registry (names, descriptions, recipes and
    builder signatures) is there without TensorFlow, e.g. for ``digitrec train --help``."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)


keras = _LazyModule("keras")
layers = _LazyModule("keras.layers")

INPUT_SHAPE = (28, 28, 1)


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: how to build it and the training settings it works best with."""

    name: str
    build: Callable[..., keras.Model]
    description: str
    recipe: dict[str, Any] = field(default_factory=dict)
    # What ``digitrec tune`` searches: a TrainConfig field or ``model_args.NAME`` → an entry as in
    # a search-space file; None: derived from the recipe and the builder's signature.
    space: dict[str, dict[str, Any]] | None = None


MODELS: dict[str, ModelSpec] = {}


def register(
    name: str, description: str, space: dict[str, dict[str, Any]] | None = None, **recipe: Any
) -> Callable:
    """Decorator adding a builder to the registry with its default recipe (TrainConfig fields)
    and its hyperparameter search space."""

    def add(build: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        MODELS[name] = ModelSpec(name, build, description, recipe, space)
        return build

    return add


# Training settings every model's search space covers in the same ranges.
SHARED_SPACE: dict[str, dict[str, Any]] = {
    "schedule": {"type": "categorical", "choices": ["constant", "cosine", "onecycle"]},
    "batch_size": {"type": "categorical", "choices": [32, 64, 128, 256]},
    "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
    "augment": {"type": "float", "low": 0.0, "high": 1.0},
}
DROPOUT_RANGE = {"type": "float", "low": 0.0, "high": 0.6}

# The recipe of fine-tuning (``--init``), in place of a model's: chosen on the validation split
# of 30 digits per class of scikit-learn's digits and on MNIST's (benchmarks/own_digits.py).
# An epoch is one pass over your own training images.
FINETUNE_RECIPE: dict[str, Any] = {
    "epochs": 15,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "schedule": "cosine",
    "augment": 1.0,
    "mix_mnist": 0.5,
    "train_layers": "all",
    "keep_init": 0.3,
    "steps_per_execution": 1,
}


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise DigitrecError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None


def build_model(name: str, num_classes: int = 10, **model_args: Any) -> keras.Model:
    """Build a registered architecture (uncompiled)."""
    try:
        return model_spec(name).build(num_classes=num_classes, **model_args)
    except TypeError as exc:
        raise DigitrecError(f"bad model arguments for {name!r}: {exc}") from None


@register(
    "lenet5",
    "the classic LeNet-5-style CNN of the Keras tutorial (baseline)",
    space={
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "epochs": {"type": "int", "low": 5, "high": 15},
        **SHARED_SPACE,
        "model_args.dropout": DROPOUT_RANGE,
        "model_args.dense_dropout": DROPOUT_RANGE,
    },
)
def lenet5(num_classes: int = 10, dropout: float = 0.25, dense_dropout: float = 0.5) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            layers.Conv2D(6, 5, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(dropout),
            layers.Conv2D(16, 5, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(dropout),
            layers.Flatten(),
            layers.Dense(120, activation="relu"),
            layers.Dropout(dense_dropout),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="lenet5",
    )


@register(
    "mlp",
    "a perceptron with two hidden layers (the non-convolutional baseline)",
    epochs=15,
    batch_size=128,
    learning_rate=1e-3,
    schedule="cosine",
    space={
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "epochs": {"type": "int", "low": 7, "high": 22},
        **SHARED_SPACE,
        "model_args.dropout": DROPOUT_RANGE,
    },
)
def mlp(
    num_classes: int = 10, hidden: tuple[int, int] = (512, 256), dropout: float = 0.2
) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            layers.Flatten(),
            layers.Dense(hidden[0], activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(hidden[1], activation="relu"),
            layers.Dropout(dropout),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="mlp",
    )


@register(
    "fast",
    "the least CPU time to 99%: two small convolutions, two epochs with a one-cycle schedule",
    epochs=2,
    batch_size=192,  # 128 at 0.01 validated as well, a seventh slower (benchmarks/fast_study.py)
    learning_rate=0.015,
    schedule="onecycle",
    # Label smoothing (about 0.1 points of validation accuracy, no time) and Dense 64 (was 128:
    # 6% fewer multiply-adds; the time saved is within the noise): benchmarks/fast_study.py.
    label_smoothing=0.1,
    precision="bfloat16",
    space={
        "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
        "epochs": {"type": "int", "low": 1, "high": 3},
        **SHARED_SPACE,
        "model_args.dense": {"type": "int", "low": 64, "high": 256, "log": True},
    },
)
def fast(
    num_classes: int = 10, filters: tuple[int, int] = (16, 32), dense: int = 64
) -> keras.Model:
    # Pooling before the activation: the same maths (max and ReLU commute) on 4x fewer values,
    # though benchmarks/fast_study.py measures no time difference on this CPU.
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            layers.Conv2D(filters[0], 5),
            layers.MaxPooling2D(2),
            layers.ReLU(),
            layers.Conv2D(filters[1], 3),
            layers.MaxPooling2D(2),
            layers.ReLU(),
            layers.Flatten(),
            layers.Dense(dense, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="fast",
    )


def _conv_bn(filters: int, kernel: int = 3) -> list[layers.Layer]:
    return [
        layers.Conv2D(filters, kernel, use_bias=False),
        layers.BatchNormalization(),
        layers.ReLU(),
    ]


@register(
    "best",
    "the most accurate single network: batch-normalized VGG-style CNN, trained with augmentation",
    epochs=30,
    batch_size=128,
    learning_rate=3e-3,
    schedule="onecycle",
    warmup=0.2,
    label_smoothing=0.1,
    augment=1.0,
    # Ensemble members alternate 3x3 and 5x5 kernels: chosen on the validation split, where
    # members 0-4 so made 14 errors against 18 with 3x3 kernels only (README, Models).
    member_args=[{}, {"kernel": 5}],
    space={
        "learning_rate": {"type": "float", "low": 3e-4, "high": 3e-2, "log": True},
        "epochs": {"type": "int", "low": 15, "high": 45},
        **SHARED_SPACE,
        "model_args.width": {"type": "int", "low": 16, "high": 64, "log": True},
        "model_args.dropout": DROPOUT_RANGE,
        "model_args.kernel": {"type": "categorical", "choices": [3, 5]},
    },
)
def best(
    num_classes: int = 10, width: int = 32, dropout: float = 0.4, kernel: Literal[3, 5] = 3
) -> keras.Model:
    # Kernel 5 also fits 28x28 (the last convolution leaves 2x2); 7 does not.
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            *_conv_bn(width, kernel),
            *_conv_bn(width, kernel),
            layers.MaxPooling2D(2),
            *_conv_bn(2 * width, kernel),
            *_conv_bn(2 * width, kernel),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(4 * width, use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Dropout(dropout),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="best",
    )


# --- models made of models --------------------------------------------------------------------


def ensemble(members: list[keras.Model], name: str = "ensemble") -> keras.Model:
    """One model averaging its members' probabilities; saves and loads as a single file."""
    inputs = keras.Input(INPUT_SHAPE)
    for i, member in enumerate(members):
        member.name = f"member_{i}"
    outputs = layers.Average(name="average")([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name=name)


# The 3x3 neighbourhood: on the validation split of a `best` run it cut the errors from 22 to 15
# (the four axis shifts alone: to 20).
TTA_SHIFTS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def shift_layer(dy: int, dx: int) -> keras.Sequential:
    """Move the image dy pixels down and dx right, filling with background (built-in layers only,
    so a saved model needs no custom code to load or export)."""
    pad = ((max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)))
    crop = ((pad[0][1], pad[0][0]), (pad[1][1], pad[1][0]))
    return keras.Sequential(
        [layers.ZeroPadding2D(pad), layers.Cropping2D(crop)], name=f"shift_{dy}_{dx}"
    )


def with_tta(model: keras.Model, shifts: tuple[tuple[int, int], ...] = TTA_SHIFTS) -> keras.Model:
    """Test-time augmentation: average the model's probabilities over a few small shifts."""
    inputs = keras.Input(INPUT_SHAPE)
    outputs = layers.Average(name="tta_average")(
        [model(shift_layer(dy, dx)(inputs)) for dy, dx in shifts]
    )
    return keras.Model(inputs, outputs, name=f"{model.name}_tta")


def computes_in_float32(model: keras.Model) -> bool:
    """Whether every layer of ``model`` (nested models included) computes in float32."""
    return all(
        computes_in_float32(layer)
        if isinstance(layer, keras.Model)
        else layer.dtype_policy.compute_dtype == "float32"
        for layer in model.layers
    )


def as_float32(model: keras.Model) -> keras.Model:
    """``model`` computing in float32: the same architecture rebuilt with float32 layers and the
    same weights (mixed-precision layers keep float32 weights, so nothing is rounded). Saved and
    exported models compute in float32, whatever precision trained them."""
    if computes_in_float32(model):
        return model

    def float32_layer(layer: layers.Layer) -> layers.Layer:
        if isinstance(layer, keras.Model):
            return as_float32(layer)
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(model, clone_function=float32_layer)
    copy.set_weights(model.get_weights())
    return copy


def multiply_accumulates(model: keras.Model) -> int:
    """Multiply-accumulates per image of the convolution and dense layers, from their shapes
    (each layer counted once, even where a wrapper calls it several times)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += multiply_accumulates(layer)
        elif isinstance(layer, layers.Conv2D):
            kernel = layer.kernel.shape  # (kh, kw, in / groups, out)
            out_h, out_w = layer.output.shape[1:3]
            total += out_h * out_w * kernel[0] * kernel[1] * kernel[2] * kernel[3]
        elif isinstance(layer, layers.Dense):
            total += layer.kernel.shape[0] * layer.kernel.shape[1]
    return total
