"""Synthesis: user-style renders of MNIST digits, and the model inputs the recognizer makes
of them (used by the export to choose the rejection threshold)."""

from __future__ import annotations

import numpy as np
from synthetic import font_digit

from digitrec.read.imaging import normalize_digit
from digitrec.synth.user_digits import (
    Style,
    digit_string_image,
    user_digit_image,
    user_style_inputs,
)


def test_user_digit_is_dark_ink_on_white_larger_than_mnist():
    image = user_digit_image(font_digit(3), np.random.default_rng(0), Style.clean())
    pixels = np.asarray(image)
    assert image.mode == "L" and min(image.size) > 28 * 2
    assert np.median(pixels) > 200 and pixels.min() < 60


def test_renders_are_reproducible_from_the_seed():
    digits = [font_digit(d) for d in (1, 2, 3)]
    first, boxes = digit_string_image(digits, np.random.default_rng(5))
    again, same_boxes = digit_string_image(digits, np.random.default_rng(5))
    assert np.array_equal(np.asarray(first), np.asarray(again)) and boxes == same_boxes


def test_user_style_inputs_give_one_normalized_input_per_digit_like_the_digit():
    digits = np.stack([font_digit(d) for d in range(10)])
    inputs = user_style_inputs(digits, seed=0)
    assert inputs.shape == (10, 28, 28) and inputs.dtype == np.float32
    assert inputs.min() >= 0 and inputs.max() <= 1
    for made, digit in zip(inputs, digits, strict=True):  # rotated, thicker or thinner, noisy
        assert np.corrcoef(made.ravel(), normalize_digit(digit / 255).ravel())[0, 1] > 0.7
