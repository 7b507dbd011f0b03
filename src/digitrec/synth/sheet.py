"""A page (or a line) being made: its layers of ink, what is written on it, and its picture.

The truth of every line is kept as the digits' pieces in page coordinates, so the boxes are
exact even after the page is photographed in perspective.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitrec.read.boxes import Box, box_around
from digitrec.synth import camera, printing
from digitrec.synth.style import PageStyle
from digitrec.synth.writing import Piece, Written

TEXT_COLOUR = (0.08, 0.08, 0.08)


@dataclass
class LineTruth:
    """One written line: its text (digits), its box and each digit's ink box, in the image's
    pixels (x0, y0, x1, y1; x1 and y1 exclusive)."""

    text: str
    box: Box
    digit_boxes: list[Box]


class Sheet:
    """Paper of ``shape`` (rows, cols) with writing ``height`` pixels high, one writer's ink,
    one colour of print, and the layers everything is drawn on."""

    def __init__(
        self, shape: tuple[int, int], height: float, style: PageStyle, rng: np.random.Generator
    ):
        self.style, self.rng, self.height = style, rng, height
        self.hand = np.zeros(shape, np.float32)
        self.rules = np.zeros(shape, np.float32)
        self.text = np.zeros(shape, np.float32)
        self.stamps = np.zeros(shape, np.float32)
        self.rule_width = printing.rule_width(style.print, height, rng)
        self.ink_colour = _pick(style.hand.ink_colours, rng)
        self.rule_colour = _pick(style.print.rule_colours, rng)
        self.lines: list[tuple[str, list[Piece]]] = []
        self.tints: list[camera.Layer] = []  # printed under everything: security backgrounds

    @property
    def shape(self) -> tuple[int, int]:
        return self.hand.shape

    def write(self, written: Written, left: int, top: int, text: str) -> None:
        """Put a written number's ink at (left, top) and record it as a line of ``text``."""
        rows, cols = written.ink.shape
        region = self.hand[top : top + rows, left : left + cols]
        np.maximum(region, written.ink, out=region)
        pieces = [Piece(p.ink, p.left + left, p.top + top) for p in written.pieces]
        self.lines.append((text, pieces))

    def field(self, kind: str, written: Written, left: int, top: int, pitch=None) -> None:
        """Print the form field ``kind`` around the number written at (left, top)."""
        printing.draw_field(kind, self.rules, written, left, top, self.rule_width, self.rng, pitch)

    def paste(self, layer: np.ndarray, ink: np.ndarray, left: int, top: int) -> None:
        """Add ink (cropped to the sheet) to one of the layers at (left, top); ink that falls
        wholly outside the sheet adds nothing."""
        rows = min(ink.shape[0], self.shape[0] - top)
        cols = min(ink.shape[1], self.shape[1] - left)
        if rows <= 0 or cols <= 0:
            return
        region = layer[top : top + rows, left : left + cols]
        np.maximum(region, ink[:rows, :cols], out=region)

    def free_spot(self, size: tuple[int, int], tries: int = 30) -> tuple[int, int] | None:
        """A place (left, top) for something of ``size`` (rows, cols) that keeps clear of the
        written lines by half the writing's height; None if none was found."""
        rows, cols = size
        if rows >= self.shape[0] or cols >= self.shape[1]:
            return None
        clearance = 0.5 * self.height
        boxes = [box_around(p.box for p in pieces) for _, pieces in self.lines]
        for _ in range(tries):
            top = int(self.rng.integers(0, self.shape[0] - rows))
            left = int(self.rng.integers(0, self.shape[1] - cols))
            if all(
                left + cols + clearance < x0
                or left > x1 + clearance
                or top + rows + clearance < y0
                or top > y1 + clearance
                for x0, y0, x1, y1 in boxes
            ):
                return left, top
        return None

    def picture(
        self, photo: bool = False, colour: bool = False, tilt: float = 0.0
    ) -> tuple[np.ndarray, list]:
        """The page as a camera or scanner gives it, and the truth of its lines in the picture:
        uint8 grey (H, W) or RGB (H, W, 3), and ``LineTruth`` top to bottom. ``tilt`` (of the
        sides) moves its corners in perspective, as a phone held askew over a cell does."""
        cam, rng = self.style.camera, self.rng
        layers = [
            *self.tints,
            (self.rules, camera.faded(self.rule_colour, cam, rng)),
            (self.text, camera.faded(TEXT_COLOUR, cam, rng)),
            (self.stamps, _pick(self.style.print.stamp_colours, rng)),
            (self.hand, camera.faded(self.ink_colour, cam, rng)),
        ]
        image = camera.compose(camera.paper_colour(cam, rng, colour), layers, colour)
        homography = None
        if photo:
            image, homography = camera.on_desk(image, cam, rng)
        elif tilt > 0:
            image, homography = camera.askew(image, tilt, rng)
        image = camera.light(image, cam, rng)
        picture = camera.capture(image, cam, rng, self.height / 40)
        truths = [
            self._truth(text, pieces, homography, picture.shape) for text, pieces in self.lines
        ]
        truths.sort(key=lambda truth: truth.box[1])
        return picture, truths

    @staticmethod
    def _truth(text: str, pieces: list[Piece], homography, shape: tuple[int, ...]) -> LineTruth:
        """A line's truth in the picture: its digits' boxes, moved by the photo's homography."""
        if homography is None:
            boxes = [p.box for p in pieces]
        else:
            boxes = [_moved_box(p.points(), homography, shape) for p in pieces]
        return LineTruth(text, box_around(boxes), boxes)


def _moved_box(points: np.ndarray, homography: np.ndarray, shape: tuple[int, ...]) -> Box:
    """The box of points after a homography, inside an image of ``shape``."""
    moved = cv2.perspectiveTransform(points.reshape(-1, 1, 2), homography).reshape(-1, 2)
    x0, y0 = (int(v) for v in np.floor(moved.min(axis=0)))
    x1, y1 = (int(v) + 1 for v in np.floor(moved.max(axis=0)))
    rows, cols = shape[:2]
    return (max(0, x0), max(0, y0), min(cols, x1), min(rows, y1))


def _pick(options: tuple, rng: np.random.Generator):
    """One of the options, uniformly."""
    return options[rng.integers(len(options))]
