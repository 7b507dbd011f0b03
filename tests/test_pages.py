"""Generated lines and pages: seeded, sized sanely, and their ground truth agrees with the
picture; the test style differs from the training style in declared parameters."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from synthetic import font_digit

from digitrec.errors import DigitrecError
from digitrec.read.decoding import array_to_gray
from digitrec.read.imaging import normalize_digit
from digitrec.synth.pages import LAYOUTS, line_samples, page_sample
from digitrec.synth.printing import font_files
from digitrec.synth.style import TEST, TRAIN, Camera, Hand, PageStyle, Print, page_style

DIGITS = np.stack([font_digit(d) for d in range(10)])
LABELS = (np.arange(10) + 3) % 10  # not the identity, so text must come from the labels
DIGIT_LAYOUTS = ("photo", "touching", "comb", "gaps", "multiline", "user")
EMPTY_LAYOUTS = ("letters", "blank", "noise", "scribble")
PLAIN = PageStyle(  # nothing varies but size, digits and gaps: each digit is recognisable
    hand=Hand(
        size_jitter=0.0, max_rotation=0.0, slant=(0, 0), pen=(0, 0), max_slope=0, gaps=((0.3, 0.6),)
    ),
    print=Print(contexts=(1, 0, 0, 0, 0, 0, 0), label_probability=0.0, empty_line_fraction=0.0),
    camera=Camera(
        paper=(1, 1),
        fade=(0, 0),
        gradient=(0, 0),
        shadow_probability=0.0,
        blur_radius=(0, 0),
        noise=(0, 0),
        jpeg_probability=0.0,
    ),
)


def has_dark_ink(gray: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether the box holds pixels well darker than the paper around it."""
    x0, y0, x1, y1 = box
    pad = max(x1 - x0, y1 - y0)
    around = gray[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad]
    return int(gray[y0:y1, x0:x1].min()) < np.percentile(around, 90) - 40


def inside(inner: tuple, outer: tuple) -> bool:
    return (
        outer[0] <= inner[0] < inner[2] <= outer[2] and outer[1] <= inner[1] < inner[3] <= outer[3]
    )


def test_the_same_seed_gives_the_same_lines_and_another_seed_others():
    first = list(line_samples(DIGITS, LABELS, 3, seed=7))
    again = list(line_samples(DIGITS, LABELS, 3, seed=7))
    other = list(line_samples(DIGITS, LABELS, 3, seed=8))
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.image, b.image) and a.text == b.text and a.boxes == b.boxes
    assert any(
        a.image.shape != c.image.shape or a.text != c.text
        for a, c in zip(first, other, strict=True)
    )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_same_seed_gives_the_same_page_and_another_seed_another(layout):
    first, again = (page_sample(layout, DIGITS, LABELS, seed=5) for _ in range(2))
    other = page_sample(layout, DIGITS, LABELS, seed=6)
    assert np.array_equal(first.image, again.image) and first.lines == again.lines
    assert first.image.shape != other.image.shape or not np.array_equal(first.image, other.image)


def test_line_samples_are_grey_lines_whose_digit_boxes_hold_ink():
    for sample in line_samples(DIGITS, LABELS, 40, seed=1):
        rows, cols = sample.image.shape
        assert sample.image.dtype == np.uint8 and rows < cols + 60
        if sample.text == "":
            continue
        assert sample.text.isdigit() and 1 <= len(sample.text) <= 12
        assert len(sample.boxes) == len(sample.text)
        heights = [y1 - y0 for _, y0, _, y1 in sample.boxes]
        assert 1.1 * max(heights) < rows < 3.0 * max(heights)
        for box in sample.boxes:
            assert inside(box, (0, 0, cols, rows)) and has_dark_ink(sample.image, box)


def test_three_tenths_of_training_lines_hold_no_digit():
    samples = list(line_samples(DIGITS, LABELS, 300, seed=3))
    empty = [sample for sample in samples if sample.text == ""]
    assert 0.23 < len(empty) / len(samples) < 0.37
    for sample in empty:
        assert sample.boxes == [] and sample.image.dtype == np.uint8
        assert sample.image.ndim == 2 and min(sample.image.shape) >= 16


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_the_style_sets_the_fraction_of_lines_without_digits(fraction):
    style = PageStyle(print=Print(empty_line_fraction=fraction))
    texts = [sample.text for sample in line_samples(DIGITS, LABELS, 30, seed=4, style=style)]
    assert all((text == "") == (fraction == 1.0) for text in texts)


def test_the_style_weighs_the_kinds_of_lines_without_digits():
    """Words only: every empty line holds dark print; specks only: not every one does."""
    only_words = Print(empty_line_fraction=1.0, empty_kinds=(1, 0, 0, 0, 0, 0))
    samples = line_samples(DIGITS, LABELS, 20, seed=5, style=PageStyle(print=only_words))
    assert all((sample.image < 128).any() for sample in samples)
    only_specks = Print(empty_line_fraction=1.0, empty_kinds=(0, 0, 0, 1, 0, 0))
    samples = line_samples(DIGITS, LABELS, 20, seed=5, style=PageStyle(print=only_specks))
    assert not all((sample.image < 128).sum() > 40 for sample in samples)


def test_line_text_spells_the_labels_of_the_digits_drawn_left_to_right():
    templates = np.stack([normalize_digit(d / 255).ravel() for d in DIGITS])
    for sample in line_samples(DIGITS, LABELS, 10, seed=2, style=PLAIN):
        assert [b[0] for b in sample.boxes] == sorted(b[0] for b in sample.boxes)
        for (x0, y0, x1, y1), label in zip(sample.boxes, sample.text, strict=True):
            ink = 1 - sample.image[y0:y1, x0:x1] / 255
            drawn = int(np.argmax(templates @ normalize_digit(ink).ravel()))
            assert LABELS[drawn] == int(label)


@pytest.mark.parametrize("layout", DIGIT_LAYOUTS)
def test_digit_pages_truth_matches_the_picture(layout):
    for seed in range(4):
        page = page_sample(layout, DIGITS, LABELS, seed)
        gray = np.round(array_to_gray(page.image) * 255).astype(np.uint8)
        rows, cols = gray.shape
        assert min(rows, cols) >= 16 and max(rows, cols) <= 2000
        assert page.text == "\n".join(line.text for line in page.lines) and page.lines
        for line in page.lines:
            assert line.text.isdigit() and len(line.digit_boxes) == len(line.text)
            assert inside(line.box, (0, 0, cols, rows))
            for box in line.digit_boxes:
                assert inside(box, line.box) and has_dark_ink(gray, box)


@pytest.mark.parametrize("layout", EMPTY_LAYOUTS)
def test_pages_without_digits_have_empty_text(layout):
    for seed in range(3):
        page = page_sample(layout, DIGITS, LABELS, seed)
        assert page.text == "" and page.lines == []
        assert page.image.dtype == np.uint8 and min(page.image.shape[:2]) >= 64


def test_multiline_pages_have_two_to_four_lines_apart_and_top_to_bottom():
    for seed in range(8):
        lines = page_sample("multiline", DIGITS, LABELS, seed).lines
        assert 2 <= len(lines) <= 4
        for upper, lower in itertools.pairwise(lines):
            assert upper.box[3] <= lower.box[1]


def gaps_between_digits(layout: str, seeds: int) -> np.ndarray:
    """The gaps between neighbouring digits' boxes, in digit heights, on pages of ``layout``."""
    gaps = []
    for seed in range(seeds):
        for line in page_sample(layout, DIGITS, LABELS, seed).lines:
            height = np.median([y1 - y0 for _, y0, _, y1 in line.digit_boxes])
            gaps += [(b[0] - a[2]) / height for a, b in itertools.pairwise(line.digit_boxes)]
    return np.asarray(gaps)


def test_touching_pages_have_neighbours_that_touch_or_overlap():
    assert np.mean(gaps_between_digits("touching", 4) <= 0.05) > 0.8


def test_gaps_pages_have_wide_and_narrow_gaps():
    gaps = gaps_between_digits("gaps", 4)
    assert gaps.min() < 0.2 and gaps.max() > 0.5


def test_photo_pages_show_a_darker_desk_around_the_page():
    for seed in range(5):
        gray = array_to_gray(page_sample("photo", DIGITS, LABELS, seed).image)
        rows, cols = gray.shape
        corners = [gray[:8, :8], gray[:8, -8:], gray[-8:, :8], gray[-8:, -8:]]
        centre = gray[rows // 3 : 2 * rows // 3, cols // 3 : 2 * cols // 3]
        assert min(float(c.mean()) for c in corners) < np.median(centre) - 0.15


def test_test_style_differs_from_train_style_in_fonts_rules_pens_shadows_and_blur():
    train_fonts, test_fonts = font_files(TRAIN.print.fonts), font_files(TEST.print.fonts)
    assert train_fonts and test_fonts and not set(train_fonts) & set(test_fonts)
    assert not set(TRAIN.print.words) & set(TEST.print.words)
    assert not set(TRAIN.print.rule_colours) & set(TEST.print.rule_colours)
    assert TRAIN.print.rule_width != TEST.print.rule_width and TRAIN.hand.pen != TEST.hand.pen
    assert TRAIN.camera.shadow != TEST.camera.shadow and TRAIN.camera.blur != TEST.camera.blur
    assert page_style("validation") is TRAIN and page_style("test") is TEST
    train, test = (page_sample("letters", DIGITS, LABELS, 0, style) for style in ("train", "test"))
    assert not np.array_equal(train.image, test.image)


def test_other_writers_shapes_are_off_in_the_named_styles_and_change_digits_when_asked():
    from digitrec.synth.writing import reshaped

    digit = DIGITS[3]
    rng = np.random.default_rng(0)
    assert np.array_equal(reshaped(digit, rng, TRAIN.hand), digit)
    assert rng.random() == np.random.default_rng(0).random()  # nothing was drawn
    assert TRAIN.hand.elastic == TEST.hand.elastic == 0
    assert TRAIN.hand.low_resolution == TEST.hand.low_resolution == 0

    def roughness(image: np.ndarray) -> float:
        return float(np.abs(np.diff(image.astype(float), axis=1)).sum())

    for hand in (Hand(elastic=3.0), Hand(low_resolution=1.0)):
        changed = reshaped(digit, np.random.default_rng(1), hand)
        assert changed.dtype == np.uint8 and changed.shape == (28, 28)
        assert not np.array_equal(changed, digit)
        assert 0.6 < changed.astype(float).sum() / digit.astype(float).sum() < 1.4  # still ink
    coarse = reshaped(digit, np.random.default_rng(1), Hand(low_resolution=1.0))
    assert roughness(coarse) < roughness(digit)  # redrawn from few pixels: smoother


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: page_sample("poster", DIGITS, LABELS, 0), "unknown layout 'poster'"),
        (lambda: page_sample("gaps", DIGITS, LABELS, 0, "exam"), "unknown style 'exam'"),
        (lambda: line_samples(DIGITS, LABELS, -1, 0), "count must be 0 or more"),
        (lambda: line_samples(DIGITS[:, :20], LABELS, 1, 0), "shape (N, 28, 28)"),
        (lambda: line_samples(DIGITS, LABELS[:5], 1, 0), "one per image"),
        (lambda: line_samples(DIGITS, LABELS + 10, 1, 0), "digits 0..9"),
        (lambda: line_samples(DIGITS[:0], LABELS[:0], 1, 0), "no digits"),
    ],
)
def test_bad_arguments_are_clear_errors_at_the_call(call, message):
    with pytest.raises(DigitrecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()
