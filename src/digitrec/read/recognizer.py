"""Reading digits from images with exported ONNX models on ONNX Runtime (no TensorFlow).

Two readers share one output (``Reading``, its ``lines`` and ``Digit``s):

- "digits", the single-digit classifier: the digits are found as pieces of ink, normalized as
  MNIST was built, classified in one batch and calibrated with the model's metadata; digits
  read with low confidence and ink shaped like no digit (a scribble) are unknown ("?").
- "pages", the page reader (``digitrec.read.page_reader``): text lines found on the page,
  each read by the CTC line model; lines that hold no writing are left out.

``Recognizer.load(model, lines=...)`` opens a classifier with a page reader (the shipped line
model unless told otherwise, whatever the classifier); ``read(image, reader=...)`` takes "auto"
(``DEFAULT_READER``): the page reader, or the classifier where ``choose_reader`` prefers it and
the line filter takes its ink for writing (measured on validation pages); "pages"; or "digits".
In a line's text, neighbouring digits further apart than the line is high are two numbers: a
space between them (``line_text``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digitrec.errors import DigitrecError, ModelError
from digitrec.read.boxes import box_around
from digitrec.read.calibration import apply_temperature
from digitrec.read.imaging import MAX_PIXELS, DigitCrop, find_digits, image_digits
from digitrec.read.loader import load_model
from digitrec.read.options import DEFAULT_READER, ReadOptions
from digitrec.read.options import READERS as READERS  # where the doors have always found it
from digitrec.read.results import UNKNOWN, Line, Reading, digit_from, line_text

BIG_DIGIT = 0.3  # digits this fraction of the image high are not on a page (``choose_reader``)
SMALL_SIDE = 320  # pixels: an image no longer than this is a crop or an icon, not a page
DEFAULT_LINES = "default"  # the page reader ``Recognizer.load`` attaches unless told
DEFAULT_LINES_NAMES = (DEFAULT_LINES, "auto")  # "auto": its former name, still taken
NO_LINES = "none"  # ``lines`` for no page reader (None too)


class Recognizer:
    """An ONNX classifier with its calibration; the session is created once and reused."""

    def __init__(self, session: Any, metadata: dict[str, Any], source: str, pages: Any = None):
        model_input = session.get_inputs()[0]
        if list(model_input.shape[1:]) != [28, 28, 1]:
            raise ModelError(
                f"{source}: the model takes inputs of shape {model_input.shape}, not (N, 28, 28, 1)"
            )
        self.session = session
        self.metadata = metadata
        self.source = source
        self.input_name = model_input.name
        self.temperature = float(metadata.get("temperature", 1.0))
        self.threshold = float(metadata.get("threshold", 0.0))
        self.pages = pages  # a ``digitrec.read.page_reader.PagePredictor``, or None

    @classmethod
    def load(
        cls,
        model: str | Path = "default",
        threads: int | None = None,
        lines: str | Path | None = DEFAULT_LINES,
    ) -> Recognizer:
        """Open an exported ONNX classifier (a file, or a run directory holding ``model.onnx``),
        or ``"default"`` for the one shipped in the package, with a page reader. A Keras model or
        a run not yet exported is a ``ModelError`` that says how to export it.

        ``lines`` is the page reader's line model, for any classifier: ``"default"`` (or
        ``"auto"``, its former name) is the run directory's own ``lines.onnx`` where ``model``
        is a run directory that holds one, else the shipped line model; a path is an exported
        line model (a file, or a folder holding ``lines.onnx`` or a line run's ``model.onnx``);
        None or ``"none"`` is no page reader. ``threads`` sets ONNX Runtime's intra-op thread
        count (default: its own choice).
        """
        loaded = load_model(model, threads)
        pages = _page_reader(model, lines, threads)
        return cls(loaded.session, loaded.metadata, loaded.source, pages)

    def describe(self) -> dict[str, str | None]:
        """What reads: the classifier's source and the page reader's line model's (None
        without a page reader)."""
        return {
            "classifier": self.source,
            "page_reader": self.pages.reader.source if self.pages is not None else None,
        }

    @property
    def classes(self) -> list[str]:
        count = self.session.get_outputs()[0].shape[-1]
        return self.metadata.get("classes") or [str(i) for i in range(count)]

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities (N, classes) for inputs (N, 28, 28[, 1]) in [0, 1],
        white on black, in one call to ONNX Runtime."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[..., None]
        if batch.ndim != 4 or batch.shape[1:] != (28, 28, 1):
            raise ModelError(f"expected inputs of shape (N, 28, 28, 1), got {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        probs = self.session.run(None, {self.input_name: batch})[0]
        return apply_temperature(probs, self.temperature)

    def read(
        self,
        image: Any,
        single: bool = False,
        top_k: int = 3,
        max_pixels: int = MAX_PIXELS,
        reader: str = DEFAULT_READER,
        *,
        options: ReadOptions | None = None,
    ) -> Reading:
        """Read the digits in one image (a path, bytes, PIL image or array), line by line, left
        to right; an image of more than ``max_pixels`` pixels is refused before it is decoded.
        ``single`` takes all the ink as one digit (the single-digit classifier); ``reader``
        is "pages", "digits" or "auto" (see ``choose_reader``; default ``DEFAULT_READER``).
        ``options`` carries these four settings as one ``ReadOptions``, instead of one by one."""
        return self.read_many([image], single, top_k, max_pixels, reader, options=options)[0]

    def read_many(
        self,
        images: Sequence[Any],
        single: bool = False,
        top_k: int = 3,
        max_pixels: int = MAX_PIXELS,
        reader: str = DEFAULT_READER,
        *,
        options: ReadOptions | None = None,
    ) -> list[Reading]:
        """Read several images (see ``read``); the single-digit classifier classifies all
        their digits in one batch.

        A bad image raises ``ImageError``; read images one at a time to carry on past it.
        """
        options = _options(single, top_k, max_pixels, reader, options)
        if options.reader == "pages" and self.pages is None:
            raise ModelError(
                f"{self.source}: no line model is loaded, so no page reader; load one (lines "
                f"{DEFAULT_LINES!r}, --lines {DEFAULT_LINES}) or read with reader 'digits'"
            )
        if options.single or self.pages is None or options.reader == "digits":
            return self._read_digits(images, options)
        return self._read_pages(images, options)

    def _read_pages(self, images: Sequence[Any], options: ReadOptions) -> list[Reading]:
        """Images read by the page reader, or by the classifier where ``choose_reader``
        prefers it ("auto"). With "auto", an image no more than ``SMALL_SIDE`` long in which
        the classifier reads one sure large digit (``lone_digit``: a crop of a digit, an icon)
        that the line filter takes for writing is the classifier's without the page reader. The
        classifier reads the images it may be chosen for in a batch."""
        top_k, auto = options.top_k, options.reader == "auto"
        decoded = [self.pages.decode(image, options.max_pixels) for image in images]
        heights = [_size(*d)[0] for d in decoded]
        classified: dict[int, Reading] = {}
        readings: dict[int, Reading] = {}
        if auto:
            small = [k for k, d in enumerate(decoded) if max(_size(*d)) <= SMALL_SIDE]
            classified = self._classify(decoded, small, top_k)
            readings = {
                k: digits
                for k, digits in classified.items()
                if lone_digit(digits, heights[k]) and self._written(digits, *decoded[k])
            }
        for k, (gray, factor) in enumerate(decoded):
            if k not in readings:
                readings[k] = Reading.of_lines(self.pages.read_lines(gray, factor, top_k))
        if auto:
            maybe = [k for k, page in readings.items() if len(page.lines) <= 1]
            classified |= self._classify(decoded, [k for k in maybe if k not in classified], top_k)
            for k, digits in classified.items():
                page = readings[k]
                chosen = page is not digits and choose_reader(page, digits, heights[k]) == "digits"
                # where the page reader read nothing, the line filter judges the classifier's ink
                if chosen and (page.lines or self._written(digits, *decoded[k])):
                    readings[k] = digits
        return [readings[k] for k in range(len(images))]

    def _classify(
        self, decoded: list[tuple[np.ndarray, float]], indices: list[int], top_k: int
    ) -> dict[int, Reading]:
        """The classifier's readings of the decoded images at ``indices``, in one batch."""
        crops = [find_digits(decoded[k][0], size=_size(*decoded[k])) for k in indices]
        return dict(zip(indices, self._readings(crops, top_k), strict=True))

    def _written(self, digits: Reading, gray: np.ndarray, factor: float) -> bool:
        """Whether the line filter takes the ink of the classifier's digits for handwriting
        (the classifier reads scribbles as digits too)."""
        x0, y0, x1, y1 = box_around([d.box for d in digits.digits])
        box = (
            int(x0 / factor),
            int(y0 / factor),
            int(np.ceil(x1 / factor)),
            int(np.ceil(y1 / factor)),
        )
        return self.pages.passes_filter(gray, box)

    def _read_digits(self, images: Sequence[Any], options: ReadOptions) -> list[Reading]:
        """Images read by the single-digit classifier, all their digits in one batch."""
        crops = [image_digits(image, options.single, options.max_pixels) for image in images]
        return self._readings(crops, options.top_k)

    def _readings(self, crops: list[list[DigitCrop]], top_k: int) -> list[Reading]:
        """The classifier's readings of each image's digit crops (one line, if any)."""
        inputs = [crop.image for image_crops in crops for crop in image_crops]
        probs = self.predict_proba(np.stack(inputs) if inputs else np.zeros((0, 28, 28)))
        readings, start = [], 0
        for image_crops in crops:
            digits = [
                digit_from(p, self.threshold, crop.box, top_k, crop.plausible)
                for crop, p in zip(
                    image_crops, probs[start : start + len(image_crops)], strict=True
                )
            ]
            start += len(image_crops)
            text = line_text(
                [UNKNOWN if d.label is None else self.classes[d.label] for d in digits],
                [d.box for d in digits],
            )
            lines = [Line(text, box_around([d.box for d in digits]), digits)] if digits else []
            readings.append(Reading(text, digits, [crop.image for crop in image_crops], lines))
        return readings


def lone_digit(digits: Reading, height: int) -> bool:
    """Whether the classifier read one digit, sure of it, at least ``BIG_DIGIT`` of the image's
    ``height`` high."""
    if len(digits.digits) != 1 or UNKNOWN in digits.text:
        return False
    box = digits.digits[0].box
    return box[3] - box[1] >= BIG_DIGIT * height


def choose_reader(page: Reading, digits: Reading, height: int) -> str:
    """Which reading of an image ``height`` pixels high to give, the page reader's or the
    single-digit classifier's ("digits"). The classifier's where the page reader found at most
    one line, the classifier is sure of all its digits, finds at least as many, and either all
    of them are at least ``BIG_DIGIT`` of the image high (an isolated digit, the drawing page)
    or there are two or more on the page reader's one line (a clean row of digits); the page
    reader's otherwise, and where both read one digit and the page reader is sure of it (the
    classifier takes the edge of a photographed page for part of the digit). Chosen by
    measurement on validation pages of every layout (the README's "Reading pages")."""
    if len(page.lines) > 1 or not digits.digits or UNKNOWN in digits.text:
        return "pages"
    if len(page.digits) == len(digits.digits) == 1 and UNKNOWN not in page.text:
        return "pages"
    if len(digits.digits) < len(page.digits):
        return "pages"
    if all(d.box[3] - d.box[1] >= BIG_DIGIT * height for d in digits.digits):
        return "digits"
    return "digits" if len(page.lines) == 1 and len(digits.digits) >= 2 else "pages"


def _options(
    single: bool, top_k: int, max_pixels: int, reader: str, options: ReadOptions | None
) -> ReadOptions:
    """The options given: ``options`` whole, or else the four settings made into one; both at
    once is an error, since one would silently win over the other."""
    given = ReadOptions(single, top_k, max_pixels, reader)
    if options is None:
        return given
    if given != ReadOptions():
        raise DigitrecError(
            "reading options given twice: pass options=ReadOptions(...) or single, top_k, "
            "max_pixels and reader one by one, not both"
        )
    return options


def _size(gray: np.ndarray, factor: float) -> tuple[int, int]:
    """The (rows, cols) of the image that ``gray`` was decoded from, ``factor`` times larger."""
    return round(gray.shape[0] * factor), round(gray.shape[1] * factor)


def _page_reader(model: str | Path, lines: str | Path | None, threads: int | None) -> Any:
    """The ``PagePredictor`` that ``lines`` names for the classifier ``model`` (see
    ``Recognizer.load``), or None."""
    if lines is None or str(lines) == NO_LINES:
        return None
    from digitrec.read.loader import LINE_MODEL
    from digitrec.read.page_reader import PagePredictor

    if str(lines) in DEFAULT_LINES_NAMES:
        own = Path(model) / LINE_MODEL
        lines = own if str(model) != "default" and own.is_file() else DEFAULT_LINES
    return PagePredictor.load(lines, threads)
