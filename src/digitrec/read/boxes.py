"""Boxes in an image's pixels: (x0, y0, x1, y1), ends exclusive; the box around several, and
how much two share."""

from __future__ import annotations

from collections.abc import Iterable

Box = tuple[int, int, int, int]


def box_around(boxes: Iterable[Box]) -> Box:
    """The smallest box holding all of ``boxes`` (at least one)."""
    x0s, y0s, x1s, y1s = zip(*boxes, strict=True)
    return (min(x0s), min(y0s), max(x1s), max(y1s))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    common = overlap(a, b)
    return common / (area(a) + area(b) - common) if common else 0.0


def overlap(a: Box, b: Box) -> int:
    """The area two boxes share."""
    return area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def area(box: Box) -> int:
    """The area of a box; 0 if it is empty."""
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])
