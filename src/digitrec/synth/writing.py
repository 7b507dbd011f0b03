"""Numbers written by hand with MNIST digits: sizes, pens, slant, slope and gaps of a writer.

A written number is ink (float, white on black, 0..1) on a canvas just large enough for it,
with each digit's ink box; the pieces (each digit's own ink and place) are kept so that boxes
can be recomputed after the page is warped (a photo).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import cv2
import numpy as np

from digitrec.read.boxes import Box
from digitrec.synth.style import Hand
from digitrec.synth.user_digits import Style, ink_box, render_ink

MNIST_INK = 20  # the height of a digit's ink in its 28×28 MNIST image, about


@dataclass
class Piece:
    """One digit's ink (white on black) with its top-left corner on the number's canvas."""

    ink: np.ndarray
    left: int
    top: int

    @functools.cached_property
    def box(self) -> Box:
        return ink_box(self.ink, self.left, self.top)

    def points(self) -> np.ndarray:
        """The (x, y) coordinates of its ink pixels on the canvas, float32 (N, 2)."""
        rows, cols = np.nonzero(self.ink > 0.1)
        return np.stack([cols + self.left, rows + self.top], axis=1).astype(np.float32)


@dataclass
class Written:
    """A written number: its ink, the digits' pieces, and the baseline (y at x = 0, slope)."""

    ink: np.ndarray
    pieces: list[Piece]
    baseline: tuple[float, float]

    @property
    def boxes(self) -> list[Box]:
        return [piece.box for piece in self.pieces]

    @property
    def height(self) -> int:
        """The median digit height: the writing's size, for what is drawn around it."""
        return int(np.median([piece.box[3] - piece.box[1] for piece in self.pieces]))


def write_number(
    digits28: list[np.ndarray],
    height: float,
    rng: np.random.Generator,
    hand: Hand,
    gaps: tuple[float, float] | None = None,
    pitch: float | None = None,
    spaces: dict[int, float] | None = None,
) -> Written:
    """The digits written in a row, about ``height`` pixels high, by one writer (one pen, one
    slant, one slope). Neighbours are ``gaps`` digit heights apart (a range; one of the hand's
    if None), or, with ``pitch`` (pixels), centred every ``pitch`` pixels as in a comb field.
    ``spaces`` adds room (pixels) before some digits (by index): for a separator's mark."""
    pen = rng.uniform(*hand.pen)
    style = replace(Style(), stroke=(pen, pen), max_rotation=hand.max_rotation)
    slant = rng.uniform(*hand.slant)
    inks = []
    for digit in digits28:
        digit = reshaped(digit, rng, hand)
        size = height * rng.uniform(1 - hand.size_jitter, 1 + hand.size_jitter)
        inks.append(_shear(render_ink(digit, size / MNIST_INK, rng, style), slant))
    if gaps is None:
        gaps = hand.gaps[rng.integers(len(hand.gaps))]
    lefts = _lefts(inks, height, rng, gaps, pitch)
    if spaces:
        lefts = [left + sum(v for k, v in spaces.items() if k <= i) for i, left in enumerate(lefts)]
    slope = np.tan(np.radians(rng.uniform(-hand.max_slope, hand.max_slope)))
    return _place(inks, lefts, slope, height, rng)


def reshaped(digit28: np.ndarray, rng: np.random.Generator, hand: Hand) -> np.ndarray:
    """The MNIST digit as another writer might have drawn it: its strokes displaced by a smooth
    random field of at most ``hand.elastic`` pixels (in NumPy: ``augment.ElasticDistortion`` is
    a Keras layer, and pages are made without TensorFlow), and (a ``hand.low_resolution`` share
    of digits) redrawn from 10-16 pixels square. The digit itself, drawing nothing, when both
    are off."""
    if not (hand.elastic or hand.low_resolution):
        return digit28
    digit = np.asarray(digit28, np.float32)
    if hand.elastic > 0:
        field = cv2.GaussianBlur(rng.uniform(-1, 1, (2, 28, 28)).astype(np.float32), (0, 0), 4)
        field *= rng.uniform(0, hand.elastic) / max(float(np.abs(field).max()), 1e-6)
        rows, cols = np.mgrid[0:28, 0:28].astype(np.float32)
        digit = cv2.remap(digit, cols + field[0], rows + field[1], cv2.INTER_LINEAR)
    if hand.low_resolution > 0 and rng.random() < hand.low_resolution:
        side = int(rng.integers(10, 17))
        small = cv2.resize(digit, (side, side), interpolation=cv2.INTER_AREA)
        digit = cv2.resize(small, (28, 28), interpolation=cv2.INTER_CUBIC)
    return np.clip(digit, 0, 255).astype(np.uint8)


def _lefts(
    inks: list[np.ndarray],
    height: float,
    rng: np.random.Generator,
    gaps: tuple[float, float],
    pitch: float | None,
) -> list[float]:
    """Each digit's left edge: after its neighbour and a gap, or centred in its cell."""
    if pitch is not None:
        return [
            (i + 0.5) * pitch - ink.shape[1] / 2 + rng.uniform(-0.08, 0.08) * pitch
            for i, ink in enumerate(inks)
        ]
    lefts, x = [], 0.0
    for ink in inks:
        lefts.append(x)
        x += ink.shape[1] + rng.uniform(*gaps) * height
    return lefts


def _place(
    inks: list[np.ndarray],
    lefts: list[float],
    slope: float,
    height: float,
    rng: np.random.Generator,
) -> Written:
    """The inks standing on a sloped baseline (bottoms jittered), on a canvas that holds them."""
    shift = min(lefts)
    lefts = [round(left - shift) for left in lefts]
    bottoms = [
        slope * (left + ink.shape[1] / 2) + rng.uniform(-0.06, 0.06) * height
        for ink, left in zip(inks, lefts, strict=True)
    ]
    tops = [round(bottom - ink.shape[0]) for ink, bottom in zip(inks, bottoms, strict=True)]
    top = min(tops)
    tops = [t - top for t in tops]
    width = max(left + ink.shape[1] for ink, left in zip(inks, lefts, strict=True))
    depth = max(t + ink.shape[0] for ink, t in zip(inks, tops, strict=True))
    canvas = np.zeros((depth, width), np.float32)
    pieces = [Piece(ink, left, t) for ink, left, t in zip(inks, lefts, tops, strict=True)]
    for piece in pieces:
        rows, cols = piece.ink.shape
        region = canvas[piece.top : piece.top + rows, piece.left : piece.left + cols]
        np.maximum(region, piece.ink, out=region)
    return Written(canvas, pieces, (float(-top), float(slope)))


def _shear(ink: np.ndarray, slant: float) -> np.ndarray:
    """The ink slanted: each row shifted right by ``slant`` times its height above the bottom."""
    rows, cols = ink.shape
    extra = int(np.ceil(abs(slant) * rows))
    offset = slant * (rows - 1) + (extra if slant < 0 else 0)
    matrix = np.float32([[1, -slant, offset], [0, 1, 0]])
    sheared = cv2.warpAffine(ink, matrix, (cols + extra, rows), flags=cv2.INTER_LINEAR)
    x0, y0, x1, y1 = ink_box(sheared, 0, 0)
    return sheared[y0:y1, x0:x1]
