"""Boxes in an image's pixels: (x0, y0, x1, y1), ends exclusive."""

from __future__ import annotations

Box = tuple[int, int, int, int]


def box_around(boxes: list[Box]) -> Box:
    """The box around the boxes (x0, y0, x1, y1; exclusive ends)."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
