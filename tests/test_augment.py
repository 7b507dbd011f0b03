"""Augmentation: distorts training batches within the image range, and never runs at inference."""

from __future__ import annotations

import numpy as np
import pytest

from digitrec.models import MODELS


def digit_like_batch(n: int = 16) -> np.ndarray:
    """Bright strokes on a black background, like MNIST inputs."""
    images = np.zeros((n, 28, 28, 1), np.float32)
    images[:, 6:22, 12:16, 0] = 1.0
    images[:, 6:9, 8:20, 0] = 0.7
    return images


def test_augmentation_keeps_shape_and_value_range_and_changes_the_images():
    from digitrec.augment import augmenter

    images = digit_like_batch()
    distorted = np.asarray(augmenter(1.0, seed=0)(images, training=True))
    assert distorted.shape == images.shape and distorted.dtype == np.float32
    assert distorted.min() >= 0.0 and distorted.max() <= 1.0 + 1e-6
    changed = [not np.allclose(a, b) for a, b in zip(distorted, images, strict=True)]
    assert sum(changed) >= len(images) - 1  # a draw may come out (nearly) the identity
    assert not np.allclose(distorted[0], distorted[1])  # each image gets its own distortion


def test_augmentation_is_the_identity_outside_training():
    from digitrec.augment import augmenter

    images = digit_like_batch()
    unchanged = augmenter(1.0, seed=0)(images, training=False)
    np.testing.assert_array_equal(np.asarray(unchanged), images)


def test_zero_strength_is_refused():
    from digitrec.augment import augmenter

    with pytest.raises(ValueError, match="strength"):
        augmenter(0.0)


def test_training_batches_are_augmented_only_when_asked():
    from digitrec.train import resolve_config, training_dataset

    rng = np.random.default_rng(0)
    images = (digit_like_batch(32)[..., 0] * 255).astype(np.uint8)
    labels = rng.integers(0, 10, 32).astype(np.uint8)

    def first_batch(augment: float) -> np.ndarray:
        config = resolve_config("fast", batch_size=32, augment=augment)
        batch, onehot = next(iter(training_dataset(images, labels, config, 10)))
        assert batch.shape == (32, 28, 28, 1) and onehot.shape == (32, 10)
        return np.asarray(batch)

    plain = first_batch(0.0)
    np.testing.assert_array_equal(plain, np.repeat(plain[:1], 32, axis=0))  # all the same digit
    distorted = first_batch(1.0)
    assert distorted.min() >= 0.0 and distorted.max() <= 1.0 + 1e-6
    assert not np.allclose(distorted, plain)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_no_model_carries_augmentation_into_inference(name):
    from keras import layers

    from digitrec.models import build_model

    random_layers = (layers.RandomRotation, layers.RandomTranslation, layers.RandomZoom)
    model = build_model(name)
    assert not [layer for layer in model._flatten_layers() if isinstance(layer, random_layers)]
