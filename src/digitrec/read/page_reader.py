"""Reading whole pages: the text lines found classically (``line_finder.find_lines``; where none is
found in a wide image, or those found come to nothing, the whole image as one line:
``whole_line``), each read by the CTC line recognizer (``line_reader.LineReader``), the digits given
with calibrated confidences and boxes in the page's pixels. NumPy, OpenCV and ONNX Runtime only:
no TensorFlow.

The line model's metadata carries what was fitted on validation pages at export
(``digitrec.training.page_rejection``): the temperature that calibrates a digit's frame posteriors,
the confidence below which a digit is shown as "?", and the mean confidence below which a line
is taken for no writing at all (a printed word, a stamp, a scribble) and left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitrec.errors import PageBudgetError
from digitrec.read.calibration import apply_temperature
from digitrec.read.decoding import decode_image
from digitrec.read.line_finder import LineBox, find_lines, region_crop
from digitrec.read.line_reader import MAX_WIDTH, LineDigit, LineReader, LineReading
from digitrec.read.loader import CROP_LINE_MODEL
from digitrec.read.policy import CROP_HEIGHT, SMALL_SIDE, WIDE
from digitrec.read.results import UNKNOWN, Digit, Line, digit_from, line_text

PAGE_SIDE = 2400  # pages are decoded at most this long: line crops need no more
CROP_BAND = 0.5  # one line this share of the image high: the image is a crop of it, read whole
# On generated validation crops of one number (document_lines, seeds 131-132), the line filter
# left out 33 numbers the line model read right from the whole crop, and 1 of 342 crops without
# a digit that it read digits in: a crop read whole whose line is this many times as wide as high
# is not filtered (a scribble filling a small page is a crop too, but seldom so wide).
UNFILTERED_WIDE = 2.0
FINE_TUNED = "fine_tuning"  # the metadata of a line model fine-tuned on a user's strings
# On generated validation crops of one number (document_lines of MNIST val and CVL valid, seed
# 906) read whole where the line finder saw no one line, 62.2% of 249 were read exactly (58.6%
# without), 94.6% of 111 without a digit read as none (91.0%), and of 120 CVL valid writers'
# lines 68.3% (65.0%); no validation page changed (60 per layout, seed 909; at 176 pixels a
# touching page did).
# A crop of one number is read as it is and as each of these (a margin of paper around it, a trim
# at top and bottom; shares of its height), the reading whose digits the line model is surest of
# kept. On generated validation crops (seed 950, chosen on seeds 922-940): 57.4% -> 62.6% of 345
# read exactly, CVL valid writers' lines 66.2% -> 72.5%, scikit-learn lines 70.0% -> 71.2%,
# crops without a digit read as none 91.9% -> 90.4% of 135, no validation page changed; a crop
# takes about 4 ms more (one core).
CROP_VARIANTS = ((0.15, 0.0), (0.0, 0.08), (0.05, 0.04))  # (margin, trim)
# The most a page's lines may come to, so that a read takes at most about a second and a few
# hundred MB whatever the image shows (the README's "Limits"): a page of numbers needs a
# fraction of either.
PAGE_LINES = 300
PAGE_COLUMNS = 65536  # model pixels across all the lines, at the model's height


@dataclass(frozen=True)
class Rejection:
    """What the predictor leaves unread: digits below ``digit_threshold`` (calibrated) are
    "?", lines whose mean calibrated confidence is below ``line_threshold`` are dropped, and so
    are lines the line filter gives a probability of writing below ``writing_threshold``; the
    ink the single-digit classifier reads where the page reader read nothing is taken for
    writing at ``region_threshold`` or more (``passes_filter``)."""

    temperature: float = 1.0
    digit_threshold: float = 0.0
    line_threshold: float = 0.0
    writing_threshold: float = 0.0
    region_threshold: float = 0.0


class PagePredictor:
    """The page reader: line finding, then the line model on all the lines in one batch."""

    def __init__(
        self,
        reader: LineReader,
        rejection: Rejection | None = None,
        crops: PagePredictor | None = None,
    ):
        self.reader = reader
        self.crops = crops or self  # who reads an image that is a crop of one number
        meta = reader.metadata
        self.rejection = rejection or Rejection(
            float(meta.get("temperature", 1.0)),
            float(meta.get("digit_threshold", 0.0)),
            float(meta.get("line_threshold", 0.0)),
            float(meta.get("writing_threshold", 0.0)),
            float(meta.get("region_threshold", 0.0)),
        )

    @classmethod
    def load(cls, model: str | Path = "default", threads: int | None = None) -> PagePredictor:
        """Open an exported line model (a file, or a folder holding one: ``line_model_file``),
        or a shipped one by name (``SHIPPED_LINE_MODELS``). ``"default"`` reads pages with the
        shipped page model and crops of one number with ``CROP_LINE_MODEL``; a model fine-tuned
        on a user's strings (``FINE_TUNED``), which are crops of one number, reads those, and the
        shipped page model pages; any other model reads both."""
        reader = LineReader.load(model, threads)
        if str(model) == "default":
            return cls(reader, crops=cls(LineReader.load(CROP_LINE_MODEL, threads)))
        if FINE_TUNED in reader.metadata:
            return cls(LineReader.load("default", threads), crops=cls(reader))
        return cls(reader)

    @property
    def source(self) -> str:
        """The line model that reads, and where another reads crops of one number, that one."""
        if self.crops is self:
            return self.reader.source
        return f"{self.reader.source}; crops of one number: {self.crops.reader.source}"

    @staticmethod
    def decode(image: Any, max_pixels: int) -> tuple[np.ndarray, float]:
        """An image as grey pixels at most ``PAGE_SIDE`` long, and the factor from those pixels
        to the image's own."""
        decoded = decode_image(image, max_pixels, max_side=PAGE_SIDE)
        return decoded.pixels, decoded.size[0] / decoded.pixels.shape[0]

    def read_lines(self, gray: np.ndarray, factor: float = 1.0, top_k: int = 3) -> list[Line]:
        """The lines of digits on a grey page, top to bottom; boxes in pixels ``factor`` times
        those of ``gray``. Lines read as nothing or rejected as no writing are left out; where
        nothing is left, a wide image is read whole as one line (``whole_line``), and so is an
        image at most ``SMALL_SIDE`` long where no line is found; both by ``crops``. An image
        that is a crop of one line (``crop_line``) is read whole (and as ``crop_variants``, the
        surest reading kept), and where that line is at least ``UNFILTERED_WIDE`` times as wide
        as high the line filter does not reject it: the line finder cuts the crop's writing
        tighter than the line model learned lines, and the filter doubts many a real number so
        cropped."""
        scale = _Scale(factor, (round(gray.shape[1] * factor), round(gray.shape[0] * factor)))
        found = [] if low_wide(gray, factor) else find_lines(gray)
        if line := crop_line(gray, found, factor):
            x0, y0, x1, y1 = line
            filtered = x1 - x0 < UNFILTERED_WIDE * (y1 - y0)
            return self.crops._read_surest(crop_variants(gray), scale, top_k, filtered)
        if not found and max(gray.shape) * factor <= SMALL_SIDE:
            return self.crops._read(whole_line(gray, wide=0.0), scale, top_k)
        return self._read(found, scale, top_k) or self._read(whole_line(gray), scale, top_k)

    def _read(
        self, found: list[LineBox], scale: _Scale, top_k: int, filtered: bool = True
    ) -> list[Line]:
        """The found lines read, those read as nothing or rejected left out (by the line
        filter only where ``filtered``)."""
        found = self._within_budget(found)
        readings = self.reader.read_lines([line.crop for line in found])
        lines = [
            self._line(box, reading, scale, top_k, filtered)
            for box, reading in zip(found, readings, strict=True)
        ]
        return [line for line in lines if line is not None]

    def _read_surest(
        self, variants: list[LineBox], scale: _Scale, top_k: int, filtered: bool
    ) -> list[Line]:
        """One line read as each of its ``variants`` (``crop_variants``), the reading whose
        digits the line model is surest of kept; a line not read in one part (too long, or
        too thin to hold writing) is read as it is."""
        if len(self._within_budget(variants[:1])) != 1:
            return self._read(variants[:1], scale, top_k, filtered)
        readings = self.reader.read_lines([variant.crop for variant in variants])
        sure = [_sureness(reading) for reading in readings]
        best = int(np.argmax(sure))
        line = self._line(variants[best], readings[best], scale, top_k, filtered)
        return [] if line is None else [line]

    def _within_budget(self, found: list[LineBox]) -> list[LineBox]:
        """The lines as the line model can take them: lines too long for it cut into parts,
        crops too thin to hold writing left out. A page whose lines come to more than
        ``PAGE_LINES`` or ``PAGE_COLUMNS`` is a ``PageBudgetError``, so that no content makes a
        read take longer or more memory than that budget."""
        longest = MAX_WIDTH / self.reader.height
        parts = [part for line in found for part in line.parts(longest) if min(part.crop.shape) > 1]
        columns = sum(round(p.crop.shape[1] * self.reader.height / p.crop.shape[0]) for p in parts)
        if len(parts) > PAGE_LINES or columns > PAGE_COLUMNS:
            raise PageBudgetError(
                f"the page holds {len(parts)} lines of marks, {columns} columns at the line "
                f"model's height: more than the {PAGE_LINES} lines and {PAGE_COLUMNS} columns "
                "the page reader reads (a pattern, not writing?); crop the part with the "
                "numbers, or read it with --reader digits"
            )
        return parts

    def region_writing(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> float | None:
        """The line filter's probability that the part of ``gray`` in ``box`` (its pixels; a
        margin of paper added) holds handwritten digits; None for a model without a filter."""
        region = region_crop(gray, box)
        return None if min(region.shape) < 2 else self.reader.writing(region)

    def passes_filter(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> bool:
        """Whether the line filter takes that region for writing (``region_threshold``)."""
        writing = self.region_writing(gray, box)
        return writing is None or writing >= self.rejection.region_threshold

    def filtered_out(self, reading: LineReading) -> bool:
        """Whether the line filter takes the line for no handwritten digits."""
        return reading.writing is not None and reading.writing < self.rejection.writing_threshold

    def line_confidences(self, readings: Sequence[LineReading]) -> list[list[float]]:
        """Each line's digits' calibrated confidences (for choosing the thresholds)."""
        return [[self._probs(d)[d.label] for d in reading.digits] for reading in readings]

    def _line(
        self, found: LineBox, reading: LineReading, scale: _Scale, top_k: int, filtered: bool = True
    ) -> Line | None:
        """A line's digits, or None for a line read as nothing or rejected as no writing (by
        the line filter only where ``filtered``)."""
        if not reading.digits or (filtered and self.filtered_out(reading)):
            return None
        digits = [self._digit(found, digit, scale, top_k) for digit in reading.digits]
        if np.mean([d.confidence for d in digits]) < self.rejection.line_threshold:
            return None
        text = line_text(
            [UNKNOWN if d.label is None else str(d.label) for d in digits],
            [d.box for d in reading.digits],  # in the upright line crop: gaps along the line
        )
        return Line(text, scale.box(found.box), digits)

    def _probs(self, digit: LineDigit) -> np.ndarray:
        """The calibrated probabilities of the ten digits at the digit's peak frame."""
        frame = np.asarray(digit.posteriors, np.float64)[None, : len(self.reader.alphabet)]
        frame = frame / max(float(frame.sum()), 1e-12)
        return apply_temperature(frame, self.rejection.temperature)[0]

    def _digit(self, found: LineBox, digit: LineDigit, scale: _Scale, top_k: int) -> Digit:
        """A digit of a line, its box in the image's pixels; "?" below ``digit_threshold``."""
        box = scale.box(found.page_box(digit.box))
        return digit_from(self._probs(digit), self.rejection.digit_threshold, box, top_k)


def crop_line(
    gray: np.ndarray, found: Sequence[LineBox], factor: float = 1.0
) -> tuple[int, int, int, int] | None:
    """The box of the one line the image is a crop of, or None: the line of a ``line_crop``,
    or the whole image where it is at most ``CROP_HEIGHT`` pixels high (its own, ``factor``
    times ``gray``'s) and ``WIDE`` times as wide: a number's crop whose writing the line finder
    splits or misses beside printed text, rules or a background."""
    if line_crop(gray, found):
        return found[0].box
    if low_wide(gray, factor):
        return (0, 0, gray.shape[1], gray.shape[0])
    return None


def low_wide(gray: np.ndarray, factor: float = 1.0) -> bool:
    """Whether the image is at most ``CROP_HEIGHT`` pixels high (its own, ``factor`` times
    ``gray``'s) and ``WIDE`` times as wide: a crop of one number, read whole without finding its
    lines first (on 1,045 generated validation crops, lines and pages, seeds 990-994, no reading
    changed, and a 112×560 crop is read in about half the time)."""
    rows, cols = gray.shape
    return rows * factor <= CROP_HEIGHT and cols >= WIDE * rows


def crop_variants(gray: np.ndarray) -> list[LineBox]:
    """The whole image as one line (``whole_line``), then as each of ``CROP_VARIANTS``: with a
    margin of paper around it, or trimmed at top and bottom (shares of its height)."""
    (whole,) = whole_line(gray, wide=0.0)
    rows, cols = gray.shape
    paper = int(np.median(whole.crop))
    variants = [whole]
    for pad, trim in CROP_VARIANTS:
        p, t = round(pad * rows), round(trim * rows)
        if rows - 2 * t < 8:
            continue
        crop = np.pad(whole.crop[t : rows - t], p, constant_values=paper)
        to_page = np.float64([[1, 0, -p], [0, 1, t - p]])
        variants.append(LineBox((0, 0, cols, rows), crop, to_page))
    return variants


def _sureness(reading: LineReading) -> float:
    """The mean of a reading's digits' posteriors at their peaks (0 for no digit)."""
    peaks = [float(np.max(digit.posteriors[:10])) for digit in reading.digits]
    return float(np.mean(peaks)) if peaks else 0.0


def line_crop(gray: np.ndarray, found: Sequence[LineBox]) -> bool:
    """Whether the image is a crop of one line: the line finder found one line, at least
    ``CROP_BAND`` of the image high (a cheque's amount, a form's cell, a line cut from a page)."""
    return len(found) == 1 and found[0].box[3] - found[0].box[1] >= CROP_BAND * gray.shape[0]


def whole_line(gray: np.ndarray, wide: float = WIDE) -> list[LineBox]:
    """The whole grey image (in [0, 1]) as one line, if it is at least ``wide`` times as wide as
    high: a tight crop of a line, whose writing the line finder may miss or cut into pieces
    (bold, blurry strokes filling the crop look like paper to it); else no line."""
    rows, cols = gray.shape
    if cols < wide * rows:
        return []
    crop = np.round(np.clip(gray, 0, 1) * 255).astype(np.uint8)
    return [LineBox((0, 0, cols, rows), crop)]


@dataclass(frozen=True)
class _Scale:
    """From decoded pixels to the image's own (``factor``), within its ``size`` (cols, rows)."""

    factor: float
    size: tuple[int, int]

    def box(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = (v * self.factor for v in box)
        cols, rows = self.size
        return (
            min(max(0, int(x0)), cols - 1),
            min(max(0, int(y0)), rows - 1),
            min(int(np.ceil(x1)), cols),
            min(int(np.ceil(y1)), rows),
        )
