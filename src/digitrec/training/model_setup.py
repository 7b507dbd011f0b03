"""The configured model: built in its precision, compiled with its optimizer and schedule."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import keras

from digitrec.training.callbacks import EpochSeeds, progress_shown
from digitrec.training.config import TrainConfig
from digitrec.training.models import build_model

VALIDATION_BATCH = 1000


@contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Layers built inside compute in ``precision``: "bfloat16" is Keras's ``mixed_bfloat16``
    (float32 weights, bfloat16 arithmetic; about a quarter faster on a CPU with AVX-512 BF16)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(
        "mixed_bfloat16" if precision == "bfloat16" else "float32"
    )
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def new_model(config: TrainConfig, num_classes: int) -> keras.Model:
    """The configured architecture, untrained, computing in the configured precision."""
    with precision_policy(config.precision):
        return build_model(config.model, num_classes, **config.model_args)


def learning_rate(config: TrainConfig, steps_per_epoch: int) -> Any:
    """The configured learning rate: constant, cosine decay to 0, or one-cycle (a linear warm-up
    from 1/25 of the peak over ``config.warmup`` of the steps, then cosine decay to 0)."""
    total = steps_per_epoch * config.epochs
    if config.schedule == "constant":
        return config.learning_rate
    if config.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=total)
    warmup = int(config.warmup * total)  # "onecycle", the last of SCHEDULES
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate / 25,
        decay_steps=max(total - warmup, 1),
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
    )


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam with the configured learning-rate schedule and, if asked, weight averaging (EMA)."""
    return keras.optimizers.Adam(
        learning_rate(config, steps_per_epoch),
        use_ema=config.ema > 0,
        ema_momentum=config.ema or 0.99,
    )


def compile_model(model: keras.Model, config: TrainConfig, steps_per_epoch: int) -> None:
    """Compile for training: the configured optimizer, loss (label smoothing) and batching."""
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
        steps_per_execution=config.steps_per_execution,
    )


def fit_epochs(
    model: keras.Model,
    config: TrainConfig,
    dataset: Any,
    random_sources: list[Any],
    validation: tuple[Any, Any] | None,
    callbacks: list[keras.callbacks.Callback],
    initial_epoch: int = 0,
    verbose: bool = True,
) -> keras.callbacks.History:
    """Run the configured epochs over a dataset that draws its own order: each epoch's random
    sources reseeded from (seed, epoch), our progress display, then the caller's callbacks."""
    ours = [EpochSeeds(config.seed, random_sources), *progress_shown(verbose)]
    return model.fit(
        dataset,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        validation_data=validation,
        validation_batch_size=VALIDATION_BATCH,
        shuffle=False,  # the dataset draws its own order (EpochSeeds)
        callbacks=[*ours, *callbacks],
        verbose=0,  # Progress shows it
    )
