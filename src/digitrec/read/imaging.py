"""Real images → MNIST-style 28×28 inputs, and segmentation of written numbers into digits.

The pipeline, each step one function:

1. ``load_image`` (``digitrec.read.decoding``) decodes any common image (or takes an array) into
   2-D float32 grey in [0, 1]; ``image_digits`` has it reduced while decoding to what step 2
   needs, and runs steps 2 to 4.
2. ``separate_ink`` (``digitrec.read.ink``) works at a bounded resolution: it decides the polarity (ink darker or lighter
   than the background), flattens uneven lighting by subtracting a large-scale background
   (a morphological opening wider than the strokes), and thresholds a lightly blurred copy with
   Otsu. It keeps the grey ink intensity, white on black like MNIST, and finds no ink at all on a
   blank or near-uniform image.
3. ``find_digits`` splits the ink into connected components, drops specks, dots and underlines,
   merges the pieces of one digit (components stacked over each other), orders the digits left
   to right and normalizes each with ``normalize_digit``.
4. ``normalize_digit`` does what was done to build MNIST: crop to the ink, scale the longer side
   to 20 px with anti-aliasing, paste into 28×28 so that the centre of mass is the centre.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from digitrec.errors import ImageError
from digitrec.read.boxes import Box, box_around
from digitrec.read.decoding import MAX_PIXELS, InputImage, decode_image, load_image
from digitrec.read.ink import Ink, separate_ink, shrink

__all__ = [  # the decoding step is re-exported: this module is the pipeline's front
    "MAX_PIXELS",
    "DigitCrop",
    "Ink",
    "find_digits",
    "image_digits",
    "load_image",
    "normalize_digit",
    "separate_ink",
]

WORK_SIDE = 1024  # ink separation and segmentation run on images at most this long
DIGIT_BOX = 20  # MNIST: the longer side of the ink box, in pixels
CANVAS = 28  # MNIST: the image side; its centre of mass sits at (14, 14)
RESAMPLE = Image.Resampling.LANCZOS  # anti-aliased scaling to the 20 px box
INK_FLOOR = 0.05  # the ink box holds the pixels above this fraction of the brightest


@dataclass
class DigitCrop:
    """One digit found in an image: its box (x0, y0, x1, y1; x1, y1 exclusive) in the original
    image's pixels, and the MNIST-normalized 28×28 float32 image, white ink on black in [0, 1].
    ``plausible`` is False for ink shaped like no digit (a scribble): the recognizer rejects it."""

    box: Box
    image: np.ndarray
    plausible: bool = True  # False: its ink is unlike any digit's (see ``_looks_like_a_digit``)


def normalize_digit(ink: np.ndarray) -> np.ndarray:
    """One digit's ink (white on black, any size) as MNIST was built: cropped to the ink, the
    longer side scaled to 20 px with anti-aliasing, centred by centre of mass in 28×28."""
    ink = np.asarray(ink, dtype=np.float32)
    rows, cols = np.nonzero(ink > INK_FLOOR * ink.max()) if ink.max() > 0 else ((), ())
    if not len(rows):
        raise ImageError("no ink to normalize: the image is blank")
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = DIGIT_BOX / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = np.asarray(Image.fromarray(crop).resize(size, RESAMPLE))
    small = np.clip(small, 0, None) / max(small.max(), 1e-6)
    # Centre of mass to (14, 14): the shift MNIST's makers applied, whole pixels, from the
    # box-centred position (rounded as from there, so the result does not depend on the route).
    top, left = (CANVAS - size[1]) // 2, (CANVAS - size[0]) // 2
    row, col = _centre_of_mass(small)
    top += int(np.round(CANVAS / 2 - top - row))
    left += int(np.round(CANVAS / 2 - left - col))
    return _paste(small, top, left)


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """The centre of mass (row, column) of a non-negative image, in pixel indices; its middle
    if it has no mass. (Not ``cv2.moments``: it takes an image 2 pixels wide for a point list.)"""
    total = float(image.sum(dtype=np.float64))
    if total <= 0:
        return (image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2
    rows = image.sum(axis=1, dtype=np.float64) @ np.arange(image.shape[0])
    cols = image.sum(axis=0, dtype=np.float64) @ np.arange(image.shape[1])
    return float(rows) / total, float(cols) / total


def _paste(image: np.ndarray, top: int, left: int) -> np.ndarray:
    """``image`` placed at (top, left) on a black CANVAS×CANVAS; what falls outside is cut."""
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.float32)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + image.shape[0], CANVAS), min(left + image.shape[1], CANVAS)
    canvas[y0:y1, x0:x1] = image[y0 - top : y1 - top, x0 - left : x1 - left]
    return np.clip(canvas, 0, 1)


# --- segmentation ---------------------------------------------------------------------------------

SPECK_FRACTION = 0.01  # a piece shorter than this fraction of the image side is a speck...
SPECK_OF_LARGEST = 0.15  # ... and so is one shorter than this fraction of the largest piece
RULE_ASPECT = 4.0  # a piece this many times wider than high, and wider than a digit, is a rule
DOT_HEIGHT = 0.4  # a group lower than this fraction of the median digit height is a dot...
DOT_WIDTH = 0.6  # ... when also narrower than this fraction of it
MERGE_OVERLAP = 0.5  # pieces whose columns overlap by this fraction of the narrower are one digit
MERGE_GAP = 0.5  # ... and the vertical gap between them is under this fraction of the tallest
PART_HEIGHT = 0.6  # a group lower than this fraction of the median is part of a digit it overlaps
FRAGMENT_GAP = 0.2  # an upright stroke this close (× its height) beside a digit twice its height...
FRAGMENT_ELONGATION = 2.0  # ... and this many times higher than wide is a piece broken off it
# Ink unlike any digit's: more holes, or strokes longer (in sides of the box), than these. Chosen
# on 3,000 MNIST training digits rendered as users' images (digitrec.synth.user_digits): 99.9% have a
# stroke length under 2.65 box sides and none over 2 holes; a page of scribbles is far above.
MAX_HOLES = 2
MAX_STROKE_LENGTH = 3.0
MAX_PIECES = 64  # only the largest pieces are considered (a page of scribbles has thousands)


@dataclass
class _Group:
    """Connected components taken as one digit: their labels and union box (x1, y1 exclusive)."""

    labels: list[int]
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def box(self) -> Box:
        return (self.x0, self.y0, self.x1, self.y1)

    def joined(self, other: _Group) -> _Group:
        return _joined([self, other])


def image_digits(
    source: InputImage, single: bool = False, max_pixels: int = MAX_PIXELS
) -> list[DigitCrop]:
    """The digits in an image (see ``find_digits``), decoded no larger than segmentation needs."""
    image = decode_image(source, max_pixels, max_side=WORK_SIDE)
    return find_digits(image.pixels, single, image.size)


def find_digits(
    gray: np.ndarray, single: bool = False, size: tuple[int, int] | None = None
) -> list[DigitCrop]:
    """The digits in a grey image, left to right, each MNIST-normalized with its box in the
    image's pixels; ``single`` takes all the ink as one digit. A blank image has none.

    ``size`` (height, width) is the image's own when ``gray`` is a reduced copy of it: the boxes
    are then given in the pixels of that size.
    """
    size = size or gray.shape
    work = shrink(gray, max(gray.shape) / WORK_SIDE)
    scale = max(size) / max(work.shape)  # the boxes are scaled back to the image's pixels
    ink = separate_ink(work)
    if not ink.mask.any():
        return []
    labels, pieces = _pieces(ink.mask)
    if single:
        groups = [_joined(pieces)] if pieces else []
    else:
        groups = _merge_stacked(_drop_rules(pieces))
        groups = _drop_dots(_attach_fragments(_attach_parts(groups)))
    groups.sort(key=lambda group: group.x0)
    return [_crop(ink.intensity, labels, group, scale, size) for group in groups]


def _pieces(mask: np.ndarray) -> tuple[np.ndarray, list[_Group]]:
    """Label the connected components of the ink; keep the largest that are not specks."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    order = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:MAX_PIECES] + 1
    boxes = [
        _Group([int(label)], x, y, x + w, y + h)
        for label, (x, y, w, h, _area) in zip(order, stats[order], strict=True)
    ]
    largest = max((max(box.width, box.height) for box in boxes), default=0)
    least = max(3.0, SPECK_FRACTION * max(mask.shape), SPECK_OF_LARGEST * largest)
    return labels, [box for box in boxes if max(box.width, box.height) >= least]


def _joined(groups: list[_Group]) -> _Group:
    """The groups taken as one."""
    return _Group(
        [label for group in groups for label in group.labels],
        *box_around(group.box for group in groups),
    )


def _drop_rules(pieces: list[_Group]) -> list[_Group]:
    """Drop underlines and other long thin horizontal lines."""
    wide = [piece.width >= RULE_ASPECT * piece.height for piece in pieces]
    heights = [piece.height for piece, is_wide in zip(pieces, wide, strict=True) if not is_wide]
    digit_height = float(np.median(heights)) if heights else 0.0
    return [
        piece
        for piece, is_wide in zip(pieces, wide, strict=True)
        if not (is_wide and piece.width > 1.5 * digit_height)
    ]


def _merge_stacked(groups: list[_Group]) -> list[_Group]:
    """Merge pieces stacked over each other in one column (a broken 5, a 7's bar): their
    columns overlap by most of the narrower and the gap between them is small."""
    groups = list(groups)
    tallest = max((group.height for group in groups), default=0)
    merged = True
    while merged:
        merged = False
        for i, j in itertools.combinations(range(len(groups)), 2):
            a, b = groups[i], groups[j]
            if _overlap(a, b) >= MERGE_OVERLAP * min(a.width, b.width) and (
                max(a.y0, b.y0) - min(a.y1, b.y1) <= MERGE_GAP * tallest
            ):
                groups[i] = a.joined(groups.pop(j))
                merged = True
                break
    return groups


def _attach_parts(groups: list[_Group]) -> list[_Group]:
    """Attach each group too low to be a digit to the digit its columns overlap most (a 5's
    flag reaching past its body); groups overlapping none stay, for ``_drop_dots`` to judge."""
    if not groups:
        return []
    height = float(np.median([group.height for group in groups]))
    digits = [group for group in groups if group.height >= PART_HEIGHT * height]
    for part in (group for group in groups if group.height < PART_HEIGHT * height):
        best = max(range(len(digits)), key=lambda k: _overlap(part, digits[k]), default=None)
        if best is not None and _overlap(part, digits[best]) > 0:
            digits[best] = digits[best].joined(part)
        else:
            digits.append(part)
    return digits


def _attach_fragments(groups: list[_Group]) -> list[_Group]:
    """Attach upright stroke fragments lying just beside a digit at least twice their height,
    overlapping none of its columns (the broken-off end of a 4's arm or a 9's stem)."""
    digits: list[_Group] = []
    for group in sorted(groups, key=lambda group: -group.height):  # the tallest first
        near = [k for k, digit in enumerate(digits) if _is_fragment_of(group, digit)]
        if near:
            k = max(near, key=lambda k: _overlap(group, digits[k]))
            digits[k] = digits[k].joined(group)
        else:
            digits.append(group)
    return digits


def _is_fragment_of(part: _Group, digit: _Group) -> bool:
    rows = min(part.y1, digit.y1) - max(part.y0, digit.y0)
    return (
        part.height < PART_HEIGHT * digit.height
        and part.height >= FRAGMENT_ELONGATION * part.width
        and rows >= 0.5 * part.height
        and _overlap(part, digit) >= -FRAGMENT_GAP * part.height
    )


def _overlap(a: _Group, b: _Group) -> int:
    """How many columns two groups share (negative: the gap between them)."""
    return min(a.x1, b.x1) - max(a.x0, b.x0)


def _drop_dots(groups: list[_Group]) -> list[_Group]:
    """Drop dots, commas and dashes: groups small beside the median digit."""
    if not groups:
        return []
    height = float(np.median([group.height for group in groups]))
    return [
        group
        for group in groups
        if group.height >= DOT_HEIGHT * height or group.width >= DOT_WIDTH * height
    ]


def _crop(
    intensity: np.ndarray,
    labels: np.ndarray,
    group: _Group,
    scale: float,
    shape: tuple[int, ...],
) -> DigitCrop:
    """Normalize one group's ink (its own components only, with their soft edges) and give
    its box in the original image's pixels."""
    y0, x0 = max(0, group.y0 - 1), max(0, group.x0 - 1)
    y1, x1 = group.y1 + 1, group.x1 + 1
    own = np.isin(labels[y0:y1, x0:x1], group.labels).astype(np.uint8)
    plausible = _looks_like_a_digit(own)
    own = cv2.dilate(own, np.ones((3, 3), np.uint8)) > 0
    image = normalize_digit(intensity[y0:y1, x0:x1] * own)
    box = (
        int(np.floor(group.x0 * scale)),
        int(np.floor(group.y0 * scale)),
        min(shape[1], int(np.ceil(group.x1 * scale))),
        min(shape[0], int(np.ceil(group.y1 * scale))),
    )
    return DigitCrop(box, image, plausible)


def _looks_like_a_digit(own: np.ndarray) -> bool:
    """Whether a group's ink (uint8 mask) could be a digit: at most MAX_HOLES holes and strokes
    at most MAX_STROKE_LENGTH sides of its box long. Both measures ignore the stroke width."""
    distance = cv2.distanceTransform(own, cv2.DIST_L2, 3)
    width = 4 * float(distance[own > 0].mean())  # the mean distance to the edge is width / 4
    length = float(own.sum()) / width / max(own.shape)
    contours, hierarchy = cv2.findContours(own, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    holes = sum(
        1
        for contour, (*_, parent) in zip(contours, hierarchy[0], strict=True)
        if parent >= 0 and cv2.contourArea(contour) > width**2
    )
    return holes <= MAX_HOLES and length <= MAX_STROKE_LENGTH
