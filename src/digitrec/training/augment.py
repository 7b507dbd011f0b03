"""Data augmentation: random rotation, shift and zoom, and elastic distortion, of training
batches, with Keras layers.

It runs in the input pipeline (``train.training_dataset``), never inside a model, so a saved
model predicts on the images it is given, untouched.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

# At strength 1.0: up to ±10° of rotation, ±10% (2.8 px) of shift, ±10% of zoom.
ROTATION_DEGREES = 10.0
SHIFT_FRACTION = 0.1
ZOOM_FRACTION = 0.1
# Elastic distortion at strength 1.0: Simard et al. (2003)'s field, uniform noise in [-1, 1]
# smoothed by a Gaussian of 4 px and scaled by 34 (about 1.4 px of displacement, standard dev.).
ELASTIC_SIGMA = 4.0
ELASTIC_ALPHA = 34.0


def augmenter(strength: float, elastic: float = 0.0, seed: int | None = None) -> keras.Sequential:
    """Random affine distortions scaled by ``strength``, then an elastic distortion scaled by
    ``elastic`` (either may be 0, not both); background (0) fills the uncovered edges."""
    if strength < 0 or elastic < 0 or strength == elastic == 0:
        raise ValueError(
            f"augmentation strengths must be non-negative and not both 0, "
            f"got {strength} (affine) and {elastic} (elastic)"
        )
    steps: list[layers.Layer] = []
    if strength > 0:
        shift, zoom = SHIFT_FRACTION * strength, ZOOM_FRACTION * strength
        fill = {"fill_mode": "constant", "fill_value": 0.0}
        steps += [
            layers.RandomRotation(ROTATION_DEGREES * strength / 360, seed=_offset(seed, 0), **fill),
            layers.RandomTranslation(shift, shift, seed=_offset(seed, 1), **fill),
            layers.RandomZoom(zoom, seed=_offset(seed, 2), **fill),
        ]
    if elastic > 0:
        steps.append(ElasticDistortion(ELASTIC_ALPHA * elastic, seed=_offset(seed, 3)))
    return keras.Sequential(steps, name="augment")


class ElasticDistortion(layers.Layer):
    """Simard et al.'s elastic distortion: every image resampled (bilinear) along its own smooth
    random displacement field. Active only when called with ``training=True``.

    Keras's ``RandomElasticTransform`` is not used: in Keras 3.15 it draws the horizontal and
    vertical fields from the same seed, so every pixel moves along the diagonal.
    """

    def __init__(
        self, alpha: float, sigma: float = ELASTIC_SIGMA, seed: int | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.alpha, self.sigma, self.seed = alpha, sigma, seed
        self.generator = keras.random.SeedGenerator(seed)
        self.kernel = _gaussian_kernel(sigma)

    def call(self, images, training: bool = False):
        if not training:
            return images
        return _bilinear(images, self.displacement(ops.shape(images)[:3]))

    def displacement(self, shape):
        """A random field of (row, column) displacements in pixels, of shape ``shape + (2,)``."""
        noise = keras.random.uniform((*shape, 2), -1.0, 1.0, seed=self.generator)
        return self.alpha * ops.depthwise_conv(noise, self.kernel, padding="same")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha, "sigma": self.sigma, "seed": self.seed}


def _bilinear(images, field):
    """Sample each image (batch, h, w, 1) at its pixel grid moved by ``field`` (batch, h, w, 2),
    bilinearly, reading background (0) outside the image.

    By hand because ``keras.ops.image.map_coordinates`` needs a static batch size.
    """
    height, width = images.shape[1], images.shape[2]
    # One pixel of background around every image; sample positions are clamped onto it.
    padded = ops.pad(images[..., 0], ((0, 0), (1, 1), (1, 1)))
    flat = ops.reshape(padded, (-1,))
    rows = ops.arange(height, dtype="float32")[None, :, None] + field[..., 0] + 1
    cols = ops.arange(width, dtype="float32")[None, None, :] + field[..., 1] + 1
    top, left = ops.floor(rows), ops.floor(cols)
    down, right = rows - top, cols - left
    first = ops.arange(ops.shape(images)[0], dtype="int32")[:, None, None] * (height + 2)

    def pixel(r, c):
        r = ops.cast(ops.clip(r, 0, height + 1), "int32")
        c = ops.cast(ops.clip(c, 0, width + 1), "int32")
        return ops.take(flat, ((first + r) * (width + 2) + c))

    value = (
        pixel(top, left) * (1 - down) * (1 - right)
        + pixel(top, left + 1) * (1 - down) * right
        + pixel(top + 1, left) * down * (1 - right)
        + pixel(top + 1, left + 1) * down * right
    )
    return value[..., None]


def _gaussian_kernel(sigma: float) -> np.ndarray:
    """A normalized Gaussian as a depthwise kernel (size, size, 2, 1) for both field components."""
    radius = math.ceil(2 * sigma)
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    g = np.exp(-(x**2) / (2 * sigma**2))
    kernel = np.outer(g, g) / np.outer(g, g).sum()
    return np.repeat(kernel[:, :, None, None], 2, axis=2).astype(np.float32)


def _offset(seed: int | None, i: int) -> int | None:
    """Distinct seeds per layer, so each distortion is drawn independently."""
    return None if seed is None else seed + i
