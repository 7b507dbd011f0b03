"""Lines that look like real documents (``digitrec.synth.documents``): each element appears
when asked, marks and print stay out of the text, every digit of the text is visible, lines
of a writer are written with that writer's digits, and the test style's elements differ from
the training style's."""

from __future__ import annotations

import functools
import pickle
from dataclasses import fields, replace

import cv2
import numpy as np
import pytest
from synthetic import font_digit
from test_pages import DIGITS, LABELS, PLAIN, has_dark_ink, inside

from digitrec.errors import DigitrecError
from digitrec.synth.documents import (
    ELEMENTS,
    crossed_seven,
    document_line,
    document_lines,
    flagged_one,
    writer_lines,
)
from digitrec.synth.layouts import Digits, WriterDigits
from digitrec.synth.pages import line_samples
from digitrec.synth.style import TEST, TRAIN, Document

MARKS = ("separators", "end_mark", "joins", "strike", "printed", "tight_cell", "rule_through")
# Several writers, each with every digit but writer 0 without a 1, and digits of no writer known.
WRITERS = np.repeat([0, 1, 2, -1, -1], 10)
IMAGES = np.concatenate([DIGITS] * 5)
IMAGE_LABELS = np.concatenate([LABELS] * 5)
IMAGE_LABELS[:10][LABELS == 1] = 2  # writer 0's "1" is read as a 2: writer 0 wrote no 1


def ink_outside_digits(image: np.ndarray, boxes: list) -> int:
    """Dark pixels beyond the digits' boxes."""
    dark = image < 220  # paper is white; beyond a box the digit's ink is under 10 %
    for x0, y0, x1, y1 in boxes:
        dark[y0:y1, x0:x1] = False
    return int(dark.sum())


def assert_truth_matches(sample, source: Digits) -> None:
    """The text is the labels of the digits drawn, left to right; each digit's box is inside
    the image and holds dark ink."""
    rows, cols = sample.image.shape
    assert sample.text == "".join(str(source.labels[i]) for i in sample.sources)
    assert sample.text.isdigit() and len(sample.boxes) == len(sample.text)
    for box in sample.boxes:
        assert inside(box, (0, 0, cols, rows)) and has_dark_ink(sample.image, box)


@pytest.mark.parametrize("element", MARKS)
@pytest.mark.parametrize("style", [TRAIN, TEST])
def test_marks_cells_and_print_add_ink_beyond_the_digits_and_nothing_to_the_text(element, style):
    style = replace(PLAIN, document=style.document)
    source = Digits(DIGITS, LABELS)
    for seed in range(4):
        plain = document_line(source, style, np.random.default_rng(seed), [])
        marked = document_line(source, style, np.random.default_rng(seed), [element])
        assert plain.elements == () and marked.elements == (element,)
        assert ink_outside_digits(plain.image, plain.boxes) == 0
        assert ink_outside_digits(marked.image, marked.boxes) > 0
        assert_truth_matches(marked, source)


@pytest.mark.parametrize("element", sorted(set(ELEMENTS) - set(MARKS)))
@pytest.mark.parametrize("style", [TRAIN, TEST])
def test_every_element_keeps_each_digit_of_the_text_visible(element, style):
    style = replace(PLAIN, document=style.document)
    source = Digits(DIGITS, LABELS)
    for seed in range(3):
        sample = document_line(source, style, np.random.default_rng(seed), [element])
        assert sample.elements == (element,)
        assert_truth_matches(sample, source)


def test_paper_backgrounds_and_scanner_margins_show():
    source, rng = Digits(DIGITS, LABELS), np.random.default_rng(0)
    plain = document_line(source, PLAIN, rng, [])
    grey = document_line(source, PLAIN, rng, ["grey_paper"])
    background = document_line(source, PLAIN, rng, ["background"])
    margin = document_line(source, PLAIN, rng, ["scanner_margin"])
    assert np.median(plain.image) == 255 and np.median(grey.image) < 215
    assert np.percentile(background.image, 25) < 250
    edges = (margin.image[:, 0], margin.image[:, -1], margin.image[0], margin.image[-1])
    assert min(edge.mean() for edge in edges) < 80


@pytest.mark.parametrize("style", [TRAIN, TEST])
def test_continental_ones_and_crossed_sevens_are_the_digit_with_a_stroke_added(style):
    doc = style.document
    one, seven = font_digit(1), font_digit(7)
    flagged = flagged_one(one, doc.flag_length[0], doc.flag_angle[0])
    crossed = crossed_seven(seven, doc.bar_length[0], doc.bar_tilt[0])
    for before, after in ((one, flagged), (seven, crossed)):
        assert (after >= before).all()
        grown = cv2.dilate((before > 100).astype(np.uint8), np.ones((3, 3), np.uint8))
        assert ((after > 100) & (grown == 0)).sum() >= 4
    source = Digits(DIGITS, LABELS)
    sample = document_line(source, PLAIN, np.random.default_rng(0), ["flag_ones", "bar_sevens"])
    assert "1" in sample.text and "7" in sample.text  # asked for: a 1 and a 7 are written


def test_the_test_style_draws_every_document_element_from_other_ranges_and_kinds():
    disjoint_kinds = ("backgrounds", "background_colours", "prefixes", "micr_fonts")
    for field in fields(Document):
        if field.name in ("share", "elements"):
            continue
        train, test = getattr(TRAIN.document, field.name), getattr(TEST.document, field.name)
        assert train != test, field.name
        if field.name in disjoint_kinds:
            assert not set(train) & set(test), field.name
        elif isinstance(train, tuple) and all(isinstance(v, float) for v in train):
            assert train[1] < test[0] or test[1] < train[0], field.name


def test_lines_of_a_known_writer_are_written_with_that_writers_digits_only():
    source = WriterDigits(IMAGES, IMAGE_LABELS, WRITERS)
    samples = [
        *document_lines(IMAGES, IMAGE_LABELS, 40, seed=1, writers=WRITERS),
        *line_samples(IMAGES, IMAGE_LABELS, 20, seed=2, writers=WRITERS),
        *writer_lines(IMAGES, IMAGE_LABELS, WRITERS, 20, seed=3, lengths=(3, 10)),
    ]
    rng = np.random.default_rng(4)
    samples += [document_line(source, PLAIN, rng, ["flag_ones"]) for _ in range(20)]
    seen = set()
    for sample in (s for s in samples if s.text):
        writers = set(WRITERS[sample.sources])
        assert len(writers) == 1 or all(w < 0 for w in writers)
        seen |= writers
        if writers == {0}:
            assert "1" not in sample.text  # no other writer's 1 is put into writer 0's number
    assert {0, 1, 2, -1} <= seen


def test_writer_lines_are_lines_of_the_lengths_asked_for():
    lines = list(writer_lines(IMAGES, IMAGE_LABELS, WRITERS, 30, seed=0, lengths=(3, 5)))
    assert all(3 <= len(line.text) <= 5 for line in lines)
    assert {len(line.text) for line in lines} == {3, 4, 5}
    with pytest.raises(DigitrecError):
        writer_lines(IMAGES, IMAGE_LABELS, WRITERS, 3, seed=0, lengths=(0, 5))


def test_document_lines_mix_document_plain_and_empty_lines():
    samples = list(document_lines(DIGITS, LABELS, 80, seed=5))
    empty = [s for s in samples if s.text == ""]
    documents = [s for s in samples if s.elements]
    plain = [s for s in samples if s.text and not s.elements]
    assert empty and documents and plain
    for sample in documents:
        assert sample.text.isdigit() and len(sample.boxes) == len(sample.text)
        assert "1" in sample.text or "flag_ones" not in sample.elements
        assert "7" in sample.text or "bar_sevens" not in sample.elements
    assert len({e for s in documents for e in s.elements}) >= 6


def test_document_lines_are_seeded_and_the_source_pickles():
    source = pickle.loads(pickle.dumps(functools.partial(document_lines, writers=WRITERS)))
    first = list(source(IMAGES, IMAGE_LABELS, 6, 9, style="test"))
    again = list(document_lines(IMAGES, IMAGE_LABELS, 6, 9, style="test", writers=WRITERS))
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.image, b.image) and (a.text, a.boxes) == (b.text, b.boxes)
    other = list(document_lines(IMAGES, IMAGE_LABELS, 6, 10, style="test", writers=WRITERS))
    assert any(a.text != c.text for a, c in zip(first, other, strict=True))


def test_bad_writers_and_unknown_elements_are_refused():
    with pytest.raises(DigitrecError):
        document_lines(DIGITS, LABELS, 3, seed=0, writers=np.zeros(3, int))
    with pytest.raises(DigitrecError):
        document_line(Digits(DIGITS, LABELS), PLAIN, np.random.default_rng(0), ["glitter"])


def test_ink_pasted_beyond_the_sheet_adds_nothing():
    from digitrec.synth.sheet import Sheet

    sheet = Sheet((40, 60), 20.0, TRAIN, np.random.default_rng(0))
    ink = np.ones((10, 30), np.float32)
    sheet.paste(sheet.text, ink, 70, 5)  # right of the sheet: once a broadcast error
    sheet.paste(sheet.text, ink, 5, 45)  # below it
    assert sheet.text.max() == 0
    sheet.paste(sheet.text, ink, 50, 35)  # partly on it: the part that falls on the sheet
    assert sheet.text.sum() == 5 * 10


@pytest.mark.parametrize("style", ["train", "test"])
def test_many_document_lines_are_made_whatever_the_draw(style):
    """Every element's placement drawn at random on 400 lines: none fails."""
    lines = list(document_lines(IMAGES, IMAGE_LABELS, 400, 3, style=style, writers=WRITERS))
    assert len(lines) == 400 and all(line.image.ndim == 2 for line in lines)
