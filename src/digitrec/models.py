"""The architecture registry: each model is one builder function plus its default training recipe.

Every model takes float32 images of shape (28, 28, 1) in [0, 1], white ink on black (MNIST's
convention), and returns class probabilities (softmax).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
from keras import layers

from digitrec.errors import DigitrecError

INPUT_SHAPE = (28, 28, 1)


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: how to build it and the training settings it works best with."""

    name: str
    build: Callable[..., keras.Model]
    description: str
    recipe: dict[str, Any] = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {}


def register(name: str, description: str, **recipe: Any) -> Callable:
    """Decorator adding a builder to the registry with its default recipe (TrainConfig fields)."""

    def add(build: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        MODELS[name] = ModelSpec(name, build, description, recipe)
        return build

    return add


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


@register("lenet5", "the classic LeNet-5-style CNN of the Keras tutorial (baseline)")
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
