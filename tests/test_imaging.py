"""Imaging: MNIST-style normalization and digit segmentation (decoding: test_decoding.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage
from synthetic import (
    Style,
    blank_page,
    digit_string_image,
    font_digit,
    noise_page,
    scribble_page,
    user_digit_image,
)

from digitrec.errors import ImageError
from digitrec.read.boxes import box_around, iou
from digitrec.read.imaging import DigitCrop, find_digits, image_digits, load_image, normalize_digit


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def assert_found(crops: list[DigitCrop], boxes: list[tuple[int, int, int, int]]) -> None:
    """One crop per true digit, left to right, each box overlapping its digit's."""
    assert len(crops) == len(boxes), ([c.box for c in crops], boxes)
    for crop, box in zip(crops, boxes, strict=True):
        assert iou(crop.box, box) > 0.5, (crop.box, box)


# --- normalization ------------------------------------------------------------------------------


def ink_box(image: np.ndarray) -> tuple[int, int]:
    """Height and width of the box of the pixels with any ink."""
    rows, cols = np.nonzero(image > 0)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


@pytest.mark.parametrize(
    ("digit", "scale", "offset"), [(0, 3, (5, 40)), (1, 5, (60, 0)), (7, 1, (0, 0))]
)
def test_normalized_digit_fills_a_20_px_box_centred_by_mass(digit, scale, offset):
    glyph = np.asarray(Image.fromarray(font_digit(digit)).resize((28 * scale, 28 * scale)))
    canvas = np.zeros((28 * scale + 80, 28 * scale + 80), dtype=np.float32)
    canvas[offset[0] : offset[0] + 28 * scale, offset[1] : offset[1] + 28 * scale] = glyph / 255
    image = normalize_digit(canvas)
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert image.min() >= 0 and image.max() == pytest.approx(1)
    assert abs(max(ink_box(image)) - 20) <= 1
    assert np.abs(np.array(ndimage.center_of_mass(image)) - 14).max() <= 1


def test_normalization_keeps_the_aspect_ratio_and_grey_levels():
    rows, cols = np.mgrid[0:100, 0:100]
    ellipse = (((rows - 40) / 30) ** 2 + ((cols - 50) / 7.5) ** 2 <= 1).astype(np.float32)
    image = normalize_digit(ellipse)  # 61 high, 15 wide
    height, width = ink_box(image)
    assert height == 20 and 3 <= width <= 5
    assert ((image > 0.05) & (image < 0.95)).any(), "anti-aliased edges are grey, not binary"


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_a_thin_upright_stroke_is_normalized_and_centred(width):
    # 24 high and 3 wide, it is 20 × 2 once scaled: OpenCV's moments took that for 20 points.
    bar = np.zeros((40, 30), dtype=np.float32)
    bar[8:32, 12 : 12 + width] = 1
    image = normalize_digit(bar)
    assert ink_box(image)[0] == 20
    assert np.abs(np.array(ndimage.center_of_mass(image)) - 14).max() <= 0.5


def test_a_thin_stroke_in_a_grey_image_is_read_as_a_digit():
    gray = np.full((120, 120), 0.9, dtype=np.float32)
    gray[40:64, 60:63] = 0.1
    (crop,) = find_digits(gray)
    assert iou(crop.box, (60, 40, 63, 64)) > 0.5 and crop.image.max() == pytest.approx(1)


def test_blank_ink_cannot_be_normalized():
    with pytest.raises(ImageError, match="no ink"):
        normalize_digit(np.zeros((30, 30)))


def test_dark_on_white_and_white_on_black_normalize_alike():
    rng = np.random.default_rng(3)
    dark = np.asarray(user_digit_image(font_digit(4), rng, Style.clean()), dtype=np.float32) / 255
    (on_white,) = find_digits(dark, single=True)
    (on_black,) = find_digits(1 - dark, single=True)
    assert correlation(on_white.image, on_black.image) > 0.98
    assert on_white.box == on_black.box


def test_mnist_digit_given_as_is_comes_back_unchanged(mnist):
    images = mnist.test_images[:100] / 255.0
    scores = [correlation(find_digits(x, single=True)[0].image, x) for x in images]
    assert min(scores) > 0.99


def test_mnist_digits_rendered_as_users_images_round_trip(mnist):
    rng = np.random.default_rng(0)
    scores = []
    for digit in mnist.test_images[:200]:
        image = user_digit_image(digit, rng, Style.clean())  # dark on white, 2-6x, off-centre
        (crop,) = find_digits(load_image(image), single=True)
        scores.append(correlation(crop.image, digit / 255))
    assert np.mean(scores) >= 0.9


# --- segmentation -------------------------------------------------------------------------------


def font_string(rng: np.random.Generator, style: Style | None = None):
    """A string of 3 to 10 typeset digits as a user's image, with the digits' boxes."""
    digits = [font_digit(int(d)) for d in rng.integers(0, 10, rng.integers(3, 11))]
    return digit_string_image(digits, rng, style or Style())


@pytest.mark.parametrize("seed", range(8))
def test_digit_strings_are_split_into_their_digits_left_to_right(seed):
    image, boxes = font_string(np.random.default_rng(seed))
    assert_found(find_digits(load_image(image)), boxes)


def test_handwritten_strings_are_split_into_their_digits(mnist):
    rng = np.random.default_rng(1)
    right = 0
    for _ in range(40):
        digits = mnist.test_images[rng.integers(0, 10000, rng.integers(3, 11))]
        image, boxes = digit_string_image(list(digits), rng)
        crops = find_digits(load_image(image))
        right += len(crops) == len(boxes) and all(
            iou(crop.box, box) > 0.3 for crop, box in zip(crops, boxes, strict=True)
        )
    assert right >= 38  # measured here: 40


def test_broken_digits_are_merged_into_one():
    rng = np.random.default_rng(5)
    image, boxes = digit_string_image([font_digit(d) for d in (5, 7, 4, 2, 5)], rng, Style.clean())
    draw = ImageDraw.Draw(image)
    for x0, y0, x1, y1 in boxes:  # cut every digit in two with a band of paper
        cut = y0 + 0.3 * (y1 - y0)
        draw.rectangle([x0, cut, x1, cut + 0.06 * (y1 - y0)], fill=255)
    assert_found(find_digits(load_image(image)), boxes)


def test_specks_dots_and_underline_are_ignored():
    rng = np.random.default_rng(6)
    image, boxes = digit_string_image([font_digit(d) for d in (3, 1, 4, 1, 5)], rng, Style.clean())
    draw = ImageDraw.Draw(image)
    bottom = max(box[3] for box in boxes)
    draw.line([(boxes[0][0], bottom + 8), (boxes[-1][2], bottom + 8)], fill=0, width=4)
    gap_x = (boxes[0][2] + boxes[1][0]) / 2  # a decimal point between the first two digits
    draw.ellipse([gap_x - 4, boxes[0][3] - 8, gap_x + 4, boxes[0][3]], fill=0)
    for x, y in rng.uniform((0, 0), image.size, (15, 2)):  # specks anywhere
        draw.ellipse([x, y, x + 2, y + 2], fill=60)
    assert_found(find_digits(load_image(image)), boxes)


def test_uneven_lighting_is_flattened():
    rng = np.random.default_rng(7)
    dim = Style(gradient=(0.6, 0.6), jpeg_probability=0.0)  # the far side at 40 % brightness
    image, boxes = font_string(rng, dim)
    assert_found(find_digits(load_image(image)), boxes)


def test_light_digits_on_dark_ground_are_found_too():
    image, boxes = font_string(np.random.default_rng(8))
    assert_found(find_digits(1 - load_image(image)), boxes)


def test_boxes_are_in_the_original_images_pixels():
    image, boxes = font_string(np.random.default_rng(9), Style.clean())
    big = image.resize((image.width * 4, image.height * 4), Image.Resampling.BICUBIC)
    crops = find_digits(load_image(big))  # over 1024 px: segmented on a reduced copy
    assert_found(crops, [tuple(4 * v for v in box) for box in boxes])


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_large_image_reduced_while_decoding_gives_the_same_digits(fmt):
    image, boxes = font_string(np.random.default_rng(9), Style.clean())
    big = image.resize((image.width * 5, image.height * 5), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, fmt)
    crops = image_digits(buffer.getvalue())  # 4270 px wide: decoded at a quarter of that
    assert_found(crops, [tuple(5 * v for v in box) for box in boxes])
    full = find_digits(load_image(buffer.getvalue()))
    for crop, at_full_size in zip(crops, full, strict=True):
        assert np.abs(np.subtract(crop.box, at_full_size.box)).max() <= 5
        assert correlation(crop.image, at_full_size.image) > 0.98


def test_single_takes_all_the_ink_as_one_digit():
    image, boxes = font_string(np.random.default_rng(10), Style.clean())
    (crop,) = find_digits(load_image(image), single=True)
    assert iou(crop.box, box_around(boxes)) > 0.9


@pytest.mark.parametrize("seed", range(10))
def test_blank_and_noise_pages_have_no_digits(seed):
    rng = np.random.default_rng(seed)
    assert find_digits(load_image(blank_page(rng))) == []
    assert find_digits(load_image(blank_page(rng)), single=True) == []
    assert find_digits(load_image(noise_page(rng))) == []


def test_a_lone_speck_is_not_a_digit():
    page = np.asarray(blank_page(np.random.default_rng(0)), dtype=np.float32) / 255
    page[300:304, 400:404] = 0.1
    assert find_digits(page) == []
    assert find_digits(page, single=True) == []


@pytest.mark.parametrize("seed", range(5))
def test_scribbles_give_normalized_crops_without_failing(seed):
    crops = find_digits(load_image(scribble_page(np.random.default_rng(seed))))
    for crop in crops:
        assert crop.image.shape == (28, 28) and 0 <= crop.image.min() <= crop.image.max() <= 1


def test_scribbles_are_flagged_as_shaped_like_no_digit():
    pages = [find_digits(load_image(scribble_page(np.random.default_rng(s)))) for s in range(20)]
    flagged = sum(bool(crops) and not any(crop.plausible for crop in crops) for crops in pages)
    assert flagged >= 17  # measured here: 19


def test_training_digits_as_users_images_are_plausible_digits(mnist):
    rng = np.random.default_rng(4)
    crops = [
        crop
        for digit in mnist.train_images[:300]
        for crop in find_digits(load_image(user_digit_image(digit, rng)))
    ]
    assert all(crop.plausible for crop in crops)


def test_a_stroke_broken_off_beside_a_digit_is_attached_to_it():
    ink = np.zeros((120, 160), dtype=np.float32)
    ink[20:100, 40:52] = 1  # the stem of a digit, 80 high
    ink[20:30, 52:90] = 1  # its arm
    ink[30:62, 94:102] = 1  # the end of the arm, broken off: 32 high, 4 px away
    (crop,) = find_digits(1 - ink)
    assert iou(crop.box, (40, 20, 102, 100)) > 0.9


def test_a_dash_beside_a_digit_is_not_attached():
    ink = np.zeros((120, 200), dtype=np.float32)
    ink[20:100, 40:52] = 1  # a 1
    ink[55:62, 56:80] = 1  # a dash just after it
    ink[20:100, 120:132] = 1  # another 1
    assert_found(find_digits(1 - ink), [(40, 20, 52, 100), (120, 20, 132, 100)])
