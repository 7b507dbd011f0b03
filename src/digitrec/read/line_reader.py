"""Reading a line of digits with a CTC line recognizer exported to ONNX (NumPy and ONNX Runtime,
no TensorFlow).

A line crop, of any polarity, is scaled to a fixed height with its aspect kept, its ink made
white on black like MNIST and stretched to full contrast, and its width padded to a multiple of
the model's time stride (``prepare_line``; training shares it). The model gives, for every
``stride`` columns (a frame), the posteriors of the ten digits and of the CTC blank. Greedy
best-path decoding reads the text; each digit gets the frames aligned to it, whose posteriors
give its confidence and whose columns, widened to the digit's ink, give its box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from digitrec.errors import ImageError, ModelError
from digitrec.read.imaging import InputImage, load_image
from digitrec.read.ink import line_ink_is_dark
from digitrec.read.loader import load_model

ALPHABET = "0123456789"
BLANK = len(ALPHABET)  # the CTC blank is the class after the digits
HEIGHT = 32  # line crops are scaled to this height (model pixels)
STRIDE = 4  # model pixels per frame along the width
BACKGROUND_SIDE = 11  # model pixels: wider than strokes, narrower than shadows and light
MIN_CONTRAST = 0.15  # a crop fainter than this is stretched no more than this much
MAX_WIDTH = 8192  # model pixels: about 300 digits, far more than a line holds
BATCH_COLUMNS = 8192  # model pixels of width in one call to the model: about 100 MB
INK_LEVEL = 0.5  # a model pixel at least this bright is ink, for the digits' boxes
METADATA_KEYS = ("alphabet", "height", "stride")


@dataclass(frozen=True)
class PreparedLine:
    """A line crop as the model takes it: ``image`` float32 (height, width), white ink on
    black in [0, 1], ``width`` a multiple of the stride; ``scale`` model pixels per crop pixel;
    ``shape`` the crop's (height, width)."""

    image: np.ndarray
    scale: float
    shape: tuple[int, int]


class Alignment(NamedTuple):
    """A decoded label and the frames aligned to it (``first`` to ``end``, exclusive), with
    its confidence: the highest posterior of the label over those frames."""

    label: int
    first: int
    end: int
    confidence: float


class LineDigit(NamedTuple):
    """One digit read in a line: label, confidence, box (x0, y0, x1, y1; ends exclusive) in the
    line crop's pixels, and the posteriors (digits, then the blank) of the frame where its
    label peaks, from which a calibrated confidence and the runner-up labels are taken."""

    label: int
    confidence: float
    box: tuple[int, int, int, int]
    posteriors: np.ndarray | None = None


@dataclass
class LineReading:
    """What a line says: its text and each digit, left to right; ``writing``, where the model
    has a line filter (``line_filter``), the probability that the crop holds handwritten digits
    at all."""

    text: str
    digits: list[LineDigit] = field(default_factory=list)
    writing: float | None = None


# --- preprocessing -------------------------------------------------------------------------------


def prepare_line(gray: np.ndarray, height: int = HEIGHT, stride: int = STRIDE) -> PreparedLine:
    """A 2-D grey line crop in [0, 1] (or uint8), either polarity, as the model's input."""
    gray = np.asarray(gray)
    if gray.dtype == np.uint8:
        gray = gray.astype(np.float32) / 255
    if gray.ndim != 2 or min(gray.shape) < 2:
        raise ImageError(f"a line crop must be a 2-D image at least 2x2, got shape {gray.shape}")
    scale = height / gray.shape[0]
    width = max(1, round(gray.shape[1] * scale))
    if width > MAX_WIDTH:
        raise ImageError(
            f"a line crop of {gray.shape[1]}x{gray.shape[0]} pixels is {width} pixels wide at "
            f"height {height}, over the limit of {MAX_WIDTH}: crop one line of digits"
        )
    resampling = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR  # area: anti-aliased
    scaled = cv2.resize(gray.astype(np.float32), (width, height), interpolation=resampling)
    image = np.zeros((height, -(-width // stride) * stride), np.float32)
    image[:, :width] = white_ink(scaled)
    return PreparedLine(image, scale, gray.shape)


def white_ink(gray: np.ndarray) -> np.ndarray:
    """Ink white on a black background: the polarity of a line crop (``line_ink_is_dark``),
    uneven light flattened by subtracting a morphological opening wider than the strokes, then
    stretched to the ink's brightest percentile."""
    ink = 1 - gray if line_ink_is_dark(gray) else gray
    kernel = np.ones((BACKGROUND_SIDE, BACKGROUND_SIDE), np.uint8)
    flat = ink - cv2.morphologyEx(ink, cv2.MORPH_OPEN, kernel)
    return np.clip(flat / max(float(np.percentile(flat, 99)), MIN_CONTRAST), 0, 1)


def width_batches(widths: Sequence[int], columns: int = BATCH_COLUMNS) -> list[list[int]]:
    """The indices of lines ``widths`` wide grouped, narrowest first, into batches whose
    padded size (lines times the widest) is at most ``columns`` (a wider line alone)."""
    batches: list[list[int]] = []
    for k in sorted(range(len(widths)), key=widths.__getitem__):
        if batches and (len(batches[-1]) + 1) * widths[k] <= columns:
            batches[-1].append(k)
        else:
            batches.append([k])
    return batches


def pad_batch(images: Sequence[np.ndarray]) -> np.ndarray:
    """Images (height, width_i) as one batch (N, height, max width, 1), zero-padded on the
    right (zero is the background)."""
    batch = np.zeros((len(images), images[0].shape[0], max(i.shape[1] for i in images), 1))
    for row, image in zip(batch, images, strict=True):
        row[:, : image.shape[1], 0] = image
    return batch.astype(np.float32)


# --- decoding ------------------------------------------------------------------------------------


def greedy_decode(posteriors: np.ndarray, blank: int = BLANK) -> list[Alignment]:
    """Best-path decoding of frame posteriors (frames, classes): the most probable class of
    each frame, repeats collapsed, blanks dropped (a blank between two equal labels keeps both)."""
    best = posteriors.argmax(axis=1)
    starts = np.flatnonzero(np.diff(best, prepend=-1))
    ends = np.append(starts[1:], len(best))
    return [
        Alignment(int(best[s]), int(s), int(e), float(posteriors[s:e, best[s]].max()))
        for s, e in zip(starts, ends, strict=True)
        if best[s] != blank
    ]


def decode_text(posteriors: np.ndarray, alphabet: str = ALPHABET) -> str:
    """The text of one line's frame posteriors (best path; the blank is the last class)."""
    return "".join(alphabet[a.label] for a in greedy_decode(posteriors, len(alphabet)))


def digit_boxes(
    line: PreparedLine, alignments: Sequence[Alignment], stride: int = STRIDE
) -> list[tuple[int, int, int, int]]:
    """Each decoded digit's box in the crop's pixels: its frames' columns, widened to the ink
    columns around them up to halfway to the neighbouring digits (and at most a line height),
    narrowed to the ink within, and the rows of that ink. Long printed rules and box lines are
    not counted as ink."""
    strokes = strokes_only(line.image)
    inked = strokes.max(axis=0) >= INK_LEVEL
    height, width = strokes.shape
    spans = [(a.first * stride, min(a.end * stride, width)) for a in alignments]
    boxes = []
    for k, (x0, x1) in enumerate(spans):
        left = max((spans[k - 1][1] + x0) // 2 if k else 0, x0 - height)
        right = min((x1 + spans[k + 1][0]) // 2 if k + 1 < len(spans) else width, x1 + height)
        columns = np.flatnonzero(inked[left:right]) + left
        if len(columns):
            x0, x1 = int(columns[0]), int(columns[-1]) + 1
        rows = np.flatnonzero(strokes[:, x0:x1].max(axis=1, initial=0) >= INK_LEVEL)
        y0, y1 = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, height)
        boxes.append(_crop_box((x0, y0, x1, y1), line.scale, line.shape))
    return boxes


def strokes_only(image: np.ndarray) -> np.ndarray:
    """A line image without its long straight lines: horizontal ones over twice the height
    (rules, underlines, the tops and bottoms of boxes) and vertical ones spanning it (the sides
    of boxes)."""
    height = image.shape[0]
    horizontal = cv2.morphologyEx(image, cv2.MORPH_OPEN, np.ones((1, 2 * height), np.uint8))
    vertical = cv2.morphologyEx(image, cv2.MORPH_OPEN, np.ones((height - 2, 1), np.uint8))
    return np.clip(image - np.maximum(horizontal, vertical), 0, 1)


def _crop_box(
    box: tuple[int, int, int, int], scale: float, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """A box in model pixels as a box in the crop's pixels, within the crop."""
    x0, y0, x1, y1 = box
    rows, cols = shape
    return (
        min(int(x0 / scale), cols - 1),
        min(int(y0 / scale), rows - 1),
        min(int(np.ceil(x1 / scale)), cols),
        min(int(np.ceil(y1 / scale)), rows),
    )


# --- the reader ----------------------------------------------------------------------------------


class LineReader:
    """An exported line recognizer on ONNX Runtime; the session is created once and reused."""

    def __init__(self, session: Any, metadata: dict[str, Any], source: str):
        missing = [key for key in METADATA_KEYS if key not in metadata]
        if missing:
            raise ModelError(
                f"{source}: not a digitrec line model (its metadata lacks {', '.join(missing)}); "
                "a page reader needs an exported line model, 'default' (the shipped one) or "
                "'none' (no page reader)"
            )
        self.session = session
        self.metadata = metadata
        self.source = source
        self.alphabet = str(metadata["alphabet"])
        self.height = int(metadata["height"])
        self.stride = int(metadata["stride"])
        self.input_name = session.get_inputs()[0].name
        self.has_filter = len(session.get_outputs()) > 1  # a line filter's second output

    @classmethod
    def load(cls, path: str | Path, threads: int | None = None) -> LineReader:
        """Open an exported line model (a file, or a folder holding one), or ``"default"`` for
        the one shipped in the package; ``threads`` sets ONNX Runtime's intra-op threads."""
        model = load_model(path, threads, lines=True)
        return cls(model.session, model.metadata, model.source)

    def outputs(self, batch: np.ndarray) -> list[np.ndarray]:
        """The model's outputs for a batch (N, height, width, 1): the frame posteriors
        (N, frames, classes), then, with a line filter, the probability of writing (N, 1)."""
        return self.session.run(None, {self.input_name: batch})

    def posteriors(self, batch: np.ndarray) -> np.ndarray:
        """Frame posteriors (N, frames, classes) of a batch (N, height, width, 1)."""
        return self.outputs(batch)[0]

    def writing(self, image: InputImage) -> float | None:
        """The line filter's probability that a crop holds handwritten digits, without reading
        them; None for a model without a filter."""
        if not self.has_filter:
            return None
        line = prepare_line(load_image(image), self.height, self.stride)
        return float(self.outputs(line.image[None, :, :, None])[1][0, 0])

    def read_line(self, image: InputImage) -> LineReading:
        """Read one line crop (a path, bytes, PIL image or array; dark ink on light or the
        reverse)."""
        return self.read_lines([image])[0]

    def read_lines(self, images: Sequence[InputImage]) -> list[LineReading]:
        """Read several line crops, in calls to the model of lines of about the same width
        (``width_batches``), so that a batch's memory stays within ``BATCH_COLUMNS``."""
        lines = [prepare_line(load_image(image), self.height, self.stride) for image in images]
        readings: list[LineReading | None] = [None] * len(lines)
        for batch in width_batches([line.image.shape[1] for line in lines]):
            posteriors, *filtered = self.outputs(pad_batch([lines[k].image for k in batch]))
            writing = [float(p) for p in filtered[0][:, 0]] if filtered else [None] * len(batch)
            for k, frames, chance in zip(batch, posteriors, writing, strict=True):
                width = lines[k].image.shape[1]
                readings[k] = self._reading(lines[k], frames[: width // self.stride], chance)
        return readings

    def _reading(
        self, line: PreparedLine, posteriors: np.ndarray, writing: float | None = None
    ) -> LineReading:
        alignments = greedy_decode(posteriors, blank=len(self.alphabet))
        boxes = digit_boxes(line, alignments, self.stride)
        digits = [
            LineDigit(a.label, a.confidence, box, posteriors[a.first + peak])
            for a, box in zip(alignments, boxes, strict=True)
            for peak in [int(np.argmax(posteriors[a.first : a.end, a.label]))]
        ]
        return LineReading("".join(self.alphabet[d.label] for d in digits), digits, writing)
