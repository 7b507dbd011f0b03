"""Synthetic text lines and pages of handwritten numbers with their ground truth.

Made from MNIST digits: the caller passes the images and labels of one split, the training
split for training data, the validation split (the last 5,000 training images) for choosing
settings, the test split for test figures. Every variation is drawn from the ranges of a style
(``digitrec.synth.style``; "train" and "validation" share one, "test" differs in declared
parameters) with ``numpy.random.default_rng(seed)``: the same arguments give the same image.

- ``line_samples``: text lines cropped with a small margin, for training a line recognizer;
  a fraction of them (the style's ``empty_line_fraction``) hold no digit (text "").
- ``page_sample``: a whole page of one layout (see ``LAYOUTS``), with each line's truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from digitrec.errors import DigitrecError
from digitrec.synth import layouts, printing
from digitrec.synth.layouts import Digits, WriterDigits
from digitrec.synth.printing import FIELDS
from digitrec.synth.sheet import LineTruth, Sheet
from digitrec.synth.style import PageStyle, page_style
from digitrec.synth.writing import Box, write_number

LAYOUTS = tuple(layouts.LAYOUTS)
EMPTY_KINDS = ("words", "stamp", "scribble", "specks", "rules", "edge")


@dataclass
class LineSample:
    """One line of handwritten digits: the grey image (uint8, dark ink on light paper), its
    text, and each digit's ink box (x0, y0, x1, y1; exclusive ends) in the image; the index
    of each digit's image in the images it was written with, and the real-document elements
    it holds (``digitrec.synth.documents.ELEMENTS``)."""

    image: np.ndarray
    text: str
    boxes: list[Box]
    sources: list[int] = field(default_factory=list)
    elements: tuple[str, ...] = ()


@dataclass
class PageSample:
    """A generated page: uint8 grey (H, W) or RGB (H, W, 3); its text, lines joined by "\\n"
    top to bottom ("" for a page without digits); and the truth of each line."""

    image: np.ndarray
    text: str
    lines: list[LineTruth]


def line_samples(
    digits: np.ndarray,
    labels: np.ndarray,
    count: int,
    seed: int,
    style: str | PageStyle = "train",
    writers: np.ndarray | None = None,
) -> Iterator[LineSample]:
    """``count`` lines of 1 to 12 digits drawn from ``digits`` (uint8 (N, 28, 28)) and their
    ``labels``: varied gaps (wide to overlapping), sizes, slant, slope and pens, in form fields
    or on ruled paper, maybe after a printed word, under uneven light, blurred, noisy, maybe
    JPEG-compressed. The style's ``empty_line_fraction`` of them hold no digit (text "", see
    ``EMPTY_KINDS``): what else a line finder crops from a page. ``style`` names the ranges
    ("train", "validation", "test") or gives them. With ``writers`` (each image's writer id,
    negative for none known) each number is written with one writer's digits. Bad arguments
    raise at once, not at the first sample."""
    source, ranges = digit_source(digits, labels, count, writers), page_style(style)
    rng = np.random.default_rng(seed)
    return (
        empty_line(ranges, rng)
        if rng.random() < ranges.print.empty_line_fraction
        else plain_line(source, ranges, rng)
        for _ in range(count)
    )


def digit_source(
    digits: np.ndarray, labels: np.ndarray, count: int, writers: np.ndarray | None
) -> Digits:
    """The digits to write lines with (by writer if ``writers`` are given); a clear error for
    bad arguments."""
    if count < 0:
        raise DigitrecError(f"count must be 0 or more, not {count}")
    return Digits(digits, labels) if writers is None else WriterDigits(digits, labels, writers)


def plain_line(
    source: Digits, style: PageStyle, rng: np.random.Generator, count: int | None = None
) -> LineSample:
    """One line sample of ``count`` digits (the hand's range if None): a number in its
    field, on a sheet just larger than it."""
    hand = style.hand
    height = rng.uniform(*hand.line_height)
    if count is None:
        count = int(rng.integers(hand.digits[0], hand.digits[1] + 1))
    chosen = source.pick(count, rng)
    images = [source.images[i] for i in chosen]
    text = "".join(str(source.labels[i]) for i in chosen)
    weights = np.asarray(style.print.contexts) / sum(style.print.contexts)
    kind = FIELDS[rng.choice(len(FIELDS), p=weights)]
    pitch = rng.uniform(1.05, 1.5) * height if kind == "comb" else None
    written = write_number(images, height, rng, hand, pitch=pitch)
    label = None
    if rng.random() < style.print.label_probability:
        label = layouts.label(style.print, written.height, rng)
    margins = rng.uniform(0.1, 0.35, 4) * height
    left = round(margins[0] + (label.shape[1] + 0.4 * height if label is not None else 0))
    top = round(margins[1])
    rows = top + written.ink.shape[0] + round(margins[3])
    cols = left + written.ink.shape[1] + round(margins[2])
    sheet = Sheet((rows, cols), written.height, style, rng)
    sheet.write(written, left, top, text)
    sheet.field(kind, written, left, top, pitch)
    if label is not None:
        bottom = min(rows, top + written.ink.shape[0]) - label.shape[0]
        sheet.paste(sheet.text, label, round(margins[0]), max(0, bottom))
    image, (truth,) = sheet.picture()
    return LineSample(image, truth.text, truth.digit_boxes, chosen)


def empty_line(style: PageStyle, rng: np.random.Generator) -> LineSample:
    """A line crop without a digit, of one of ``EMPTY_KINDS``: printed words or a stamp (no
    digit in either), a pen's scribble, specks of dust, fragments of printed rules, or the dark
    sliver of a desk beyond the page's edge."""
    height = rng.uniform(*style.hand.line_height)
    weights = np.asarray(style.print.empty_kinds, float)
    kind = EMPTY_KINDS[rng.choice(len(EMPTY_KINDS), p=weights / weights.sum())]
    rows = round(height * rng.uniform(1.2, 1.8))
    cols = round(height * rng.uniform(1.0, 8.0))
    if kind == "words":
        ink = layouts.label(style.print, height, rng)
    elif kind == "stamp":
        ink = printing.stamp(0.6 * height, style.print, rng)
    elif kind == "scribble":
        ink = printing.scribble((round(height), cols), max(1, round(height / 12)), rng)
    else:
        ink = None
    if ink is not None:
        rows, cols = max(rows, ink.shape[0] + 4), max(cols, ink.shape[1] + 4)
    sheet = Sheet((rows, cols), height, style, rng)
    if ink is not None:
        layer = sheet.stamps if kind == "stamp" else sheet.text if kind == "words" else sheet.hand
        top, left = (rows - ink.shape[0]) // 2, int(rng.integers(0, cols - ink.shape[1] + 1))
        sheet.paste(layer, ink, left, top)
    elif kind == "specks":
        printing.specks(sheet.hand, rng, max(2.0, 0.12 * height))
    elif kind == "rules":
        _rule_fragments(sheet, rng)
    image, _ = sheet.picture()
    if kind == "edge":
        image = _page_edge(image, style, rng)
    return LineSample(image, "", [])


def _rule_fragments(sheet: Sheet, rng: np.random.Generator) -> None:
    """One to four straight pieces of printed rules and box sides across the sheet."""
    rows, cols = sheet.shape
    for _ in range(rng.integers(1, 5)):
        if rng.random() < 0.5:
            y = rng.uniform(0, rows)
            start, end = (rng.uniform(0, cols / 2), y), (rng.uniform(cols / 2, cols), y)
        else:
            x = rng.uniform(0, cols)
            start, end = (x, rng.uniform(0, rows / 3)), (x, rng.uniform(2 * rows / 3, rows))
        printing.line(sheet.rules, start, end, sheet.rule_width)


def _page_edge(image: np.ndarray, style: PageStyle, rng: np.random.Generator) -> np.ndarray:
    """The image with a dark desk beyond a soft, slightly tilted page edge on one side."""
    rows, cols = image.shape
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    if rng.random() < 0.7:
        x, y = y, x  # the edge runs across the line rather than along it
    along = y + rng.uniform(-0.2, 0.2) * x
    if rng.random() < 0.5:
        along = along.max() - along
    edge = rng.uniform(0.05, 0.6) * along.max()
    beyond = 1 / (1 + np.exp(-np.clip((along - edge) / rng.uniform(0.5, 3.0), -30, 30)))
    desk = rng.uniform(*style.camera.desk) * 255
    return np.round(image * (1 - beyond) + desk * beyond).astype(np.uint8)


def page_sample(
    layout: str,
    digits: np.ndarray,
    labels: np.ndarray,
    seed: int,
    style: str | PageStyle = "train",
) -> PageSample:
    """A page of ``layout`` (one of ``LAYOUTS``) written with ``digits`` and ``labels``."""
    if layout not in layouts.LAYOUTS:
        raise DigitrecError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    ranges = page_style(style)
    image, lines = layouts.LAYOUTS[layout](
        Digits(digits, labels), ranges, np.random.default_rng(seed)
    )
    return PageSample(image, "\n".join(line.text for line in lines), lines)
