"""Augmentation: distorts training batches within the image range, and never runs at inference."""

from __future__ import annotations

import numpy as np
import pytest

from digitrec.training.models import MODELS


def digit_like_batch(n: int = 16) -> np.ndarray:
    """Bright strokes on a black background, like MNIST inputs."""
    images = np.zeros((n, 28, 28, 1), np.float32)
    images[:, 6:22, 12:16, 0] = 1.0
    images[:, 6:9, 8:20, 0] = 0.7
    return images


@pytest.mark.parametrize(("affine", "elastic"), [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
def test_augmentation_keeps_shape_and_value_range_and_changes_the_images(affine, elastic):
    from digitrec.training.augment import augmenter

    images = digit_like_batch()
    distorted = np.asarray(augmenter(affine, elastic, seed=0)(images, training=True))
    assert distorted.shape == images.shape and distorted.dtype == np.float32
    assert distorted.min() >= 0.0 and distorted.max() <= 1.0 + 1e-6
    changed = [not np.allclose(a, b) for a, b in zip(distorted, images, strict=True)]
    assert sum(changed) >= len(images) - 1  # a draw may come out (nearly) the identity
    assert not np.allclose(distorted[0], distorted[1])  # each image gets its own distortion


def test_augmentation_is_the_identity_outside_training():
    from digitrec.training.augment import augmenter

    images = digit_like_batch()
    unchanged = augmenter(1.0, 1.0, seed=0)(images, training=False)
    np.testing.assert_array_equal(np.asarray(unchanged), images)


@pytest.mark.parametrize(("affine", "elastic"), [(0.0, 0.0), (-1.0, 1.0), (1.0, -0.5)])
def test_no_or_negative_strength_is_refused(affine, elastic):
    from digitrec.training.augment import augmenter

    with pytest.raises(ValueError, match="strength"):
        augmenter(affine, elastic)


def test_elastic_resampling_is_bilinear_interpolation_with_background_outside():
    from scipy import ndimage

    from digitrec.training.augment import _bilinear

    images = digit_like_batch(3)
    still = np.asarray(_bilinear(images, np.zeros((3, 28, 28, 2), np.float32)))
    np.testing.assert_allclose(still, images, atol=1e-6)

    field = np.random.default_rng(0).uniform(-4, 4, (3, 28, 28, 2)).astype(np.float32)
    moved = np.asarray(_bilinear(images, field))[..., 0]
    rows, cols = np.mgrid[0:28, 0:28]
    for image, displacement, result in zip(images, field, moved, strict=True):
        where = [rows + displacement[..., 0], cols + displacement[..., 1]]
        expected = ndimage.map_coordinates(image[..., 0], where, order=1, cval=0.0)
        np.testing.assert_allclose(result, expected, atol=1e-5)


def test_elastic_fields_are_smooth_and_move_both_ways_independently():
    from digitrec.training.augment import ELASTIC_ALPHA, ElasticDistortion

    field = np.asarray(ElasticDistortion(ELASTIC_ALPHA, seed=0).displacement((8, 28, 28)))
    assert field.shape == (8, 28, 28, 2)
    rows, cols = field[..., 0], field[..., 1]
    assert 0.5 < rows.std() < 3 and 0.5 < cols.std() < 3  # about a pixel: not nothing, not chaos
    assert abs(np.corrcoef(rows.ravel(), cols.ravel())[0, 1]) < 0.3  # not along one diagonal
    assert np.abs(np.diff(cols, axis=2)).mean() < 0.2 * cols.std()  # smooth: neighbours move alike


def test_training_batches_are_augmented_only_when_asked():
    from digitrec.training.config import resolve_config
    from digitrec.training.train import training_dataset

    rng = np.random.default_rng(0)
    images = (digit_like_batch(32)[..., 0] * 255).astype(np.uint8)
    labels = rng.integers(0, 10, 32).astype(np.uint8)

    def first_batch(augment: float, elastic: float = 0.0) -> np.ndarray:
        config = resolve_config("fast", batch_size=32, augment=augment, elastic=elastic)
        dataset, _ = training_dataset(images, labels, config, 10)
        batch, onehot = next(iter(dataset))
        assert batch.shape == (32, 28, 28, 1) and onehot.shape == (32, 10)
        return np.asarray(batch)

    plain = first_batch(0.0)
    np.testing.assert_array_equal(plain, np.repeat(plain[:1], 32, axis=0))  # all the same digit
    for distorted in (first_batch(1.0), first_batch(0.0, elastic=1.0)):
        assert distorted.min() >= 0.0 and distorted.max() <= 1.0 + 1e-6
        assert not np.allclose(distorted, plain)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_no_model_carries_augmentation_into_inference(name):
    from keras import layers

    from digitrec.training.augment import ElasticDistortion
    from digitrec.training.models import build_model

    random_layers = (
        layers.RandomRotation,
        layers.RandomTranslation,
        layers.RandomZoom,
        ElasticDistortion,
    )
    model = build_model(name)
    assert not [layer for layer in model._flatten_layers() if isinstance(layer, random_layers)]


@pytest.mark.parametrize(("affine", "elastic"), [(1.0, 0.0), (0.0, 1.0)])
def test_training_draws_new_distortions_for_every_batch_and_epoch(affine, elastic):
    from digitrec.training.callbacks import set_epoch_seeds
    from digitrec.training.config import resolve_config
    from digitrec.training.train import seed_everything, training_dataset

    images = (np.repeat(digit_like_batch(1), 32 * 8, axis=0)[..., 0] * 255).astype(np.uint8)
    config = resolve_config("fast", batch_size=32, augment=affine, elastic=elastic)
    seed_everything(config.seed)  # as training does
    dataset, sources = training_dataset(images, np.zeros(len(images), np.uint8), config, 10)
    draws = []
    for epoch in range(2):
        set_epoch_seeds(config.seed, epoch, sources)  # as EpochSeeds does
        # One identical digit everywhere: the first image of each batch shows that batch's draw.
        draws += [np.asarray(batch[0]).round(4).tobytes() for batch, _ in dataset]
    assert len(set(draws)) == len(draws) == 16


def test_an_epoch_draws_the_same_order_and_distortions_whatever_ran_before():
    """What lets a resumed run train as an uninterrupted one: epoch k's batches depend on
    (seed, k) only, not on how many epochs this process has drawn before."""
    from digitrec.training.callbacks import set_epoch_seeds
    from digitrec.training.config import resolve_config
    from digitrec.training.train import training_dataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 28, 28), dtype=np.uint8)
    labels = np.arange(64, dtype=np.uint8) % 10
    config = resolve_config("fast", batch_size=16, augment=1.0, elastic=1.0, seed=3)

    def epoch_batches(sources, dataset, epoch):
        set_epoch_seeds(config.seed, epoch, sources)
        return [np.asarray(x) for x, _ in dataset]

    dataset, sources = training_dataset(images, labels, config, 10)
    first, second = epoch_batches(sources, dataset, 0), epoch_batches(sources, dataset, 1)
    fresh, fresh_sources = training_dataset(images, labels, config, 10)  # as a new process would
    for got, want in zip(epoch_batches(fresh_sources, fresh, 1), second, strict=True):
        np.testing.assert_array_equal(got, want)
    assert not np.allclose(np.concatenate(first), np.concatenate(second))
