"""Data augmentation: random rotation, shift and zoom of training batches, with Keras layers.

It runs in the input pipeline (``train.training_dataset``), never inside a model, so a saved
model predicts on the images it is given, untouched.
"""

from __future__ import annotations

import keras
from keras import layers

# At strength 1.0: up to ±10° of rotation, ±10% (2.8 px) of shift, ±10% of zoom.
ROTATION_DEGREES = 10.0
SHIFT_FRACTION = 0.1
ZOOM_FRACTION = 0.1


def augmenter(strength: float, seed: int | None = None) -> keras.Sequential:
    """Random affine distortions scaled by ``strength``; background (0) fills the uncovered edges."""
    if strength <= 0:
        raise ValueError(f"augmentation strength must be positive, got {strength}")
    shift, zoom = SHIFT_FRACTION * strength, ZOOM_FRACTION * strength
    fill = {"fill_mode": "constant", "fill_value": 0.0}
    return keras.Sequential(
        [
            layers.RandomRotation(ROTATION_DEGREES * strength / 360, seed=_offset(seed, 0), **fill),
            layers.RandomTranslation(shift, shift, seed=_offset(seed, 1), **fill),
            layers.RandomZoom(zoom, seed=_offset(seed, 2), **fill),
        ],
        name="augment",
    )


def _offset(seed: int | None, i: int) -> int | None:
    """Distinct seeds per layer, so rotation, shift and zoom are drawn independently."""
    return None if seed is None else seed + i
