"""What a reading gives: the text, digits and lines of an image (``Reading``, ``Line``,
``Digit``), as dataclasses that ``predict --json``, the batch output and the web API share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from digitrec.read.boxes import Box

UNKNOWN = "?"

# A gap between neighbouring digits wider than this many times the height of the box around the
# line's digits is a space between two numbers (``line_text``). On validation pages (seeds from
# 21, 100 a layout) 3 of 1,011 read lines of one number got a space (the widest gaps of "gaps",
# "comb" and "photo" pages), and every pair of numbers written 1.4 digit heights apart got one.
WORD_GAP = 1.0
SIGNIFICANT = 6  # significant digits of the floats written (confidences, probabilities)


def _plain(value: Any) -> Any:
    """A value as JSON-ready data: a dataclass as a dict of its fields but those marked
    ``"array"`` (NumPy arrays, which the web API encodes itself), tuples and lists as lists."""
    if is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: _plain(getattr(value, item.name))
            for item in fields(value)
            if not item.metadata.get("array")
        }
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


class _Record:
    """A result dataclass: ``to_dict`` lists its fields, so that a new field reaches
    ``predict --json`` without another edit, and so does the web API, whose schema is built
    from the fields' types and the ``"description"`` in each field's metadata."""

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass
class Digit(_Record):
    """One digit found in an image."""

    label: int | None = field(
        metadata={"description": "the digit, or null when it was rejected as unsure"}
    )
    confidence: float = field(
        metadata={"description": "calibrated probability of the most likely label"}
    )
    box: tuple[int, int, int, int] = field(
        metadata={"description": "x0, y0, x1, y1 in the image's pixels"}
    )
    top: list[tuple[int, float]] = field(
        metadata={"description": "the likeliest labels with their probabilities, best first"}
    )


@dataclass
class Line(_Record):
    """One line of digits in an image."""

    text: str = field(
        metadata={
            "description": "the line's digits left to right, '?' for a rejected one; a space "
            "where a gap wider than the line is high parts two numbers"
        }
    )
    box: tuple[int, int, int, int] = field(
        metadata={"description": "x0, y0, x1, y1 of the line in the image's pixels"}
    )
    digits: list[Digit] = field(metadata={"description": "the line's digits, left to right"})


@dataclass
class Reading(_Record):
    """What an image says: its text, its digits, and its lines top to bottom."""

    text: str = field(
        metadata={
            "description": "the digits read left to right, '?' for a rejected one, a space "
            "between two numbers on a line; lines joined by a newline, top to bottom"
        }
    )
    digits: list[Digit] = field(
        metadata={"description": "each digit found, line by line, left to right"}
    )
    normalized: list[np.ndarray] = field(
        default_factory=list,
        repr=False,
        metadata={
            "description": "the 28×28 image the single-digit classifier saw for each digit "
            "(empty when the page reader read the image)",
            "array": True,
        },
    )
    lines: list[Line] = field(
        default_factory=list,
        metadata={"description": "the lines of digits, top to bottom (none without digits)"},
    )

    @classmethod
    def of_lines(cls, lines: list[Line], normalized: list[np.ndarray] | None = None) -> Reading:
        """The reading made of these lines."""
        return cls(
            "\n".join(line.text for line in lines),
            [digit for line in lines for digit in line.digits],
            normalized or [],
            lines,
        )


def line_text(characters: Sequence[str], boxes: Sequence[Box]) -> str:
    """A line's characters left to right (each digit's, with its box), a single space where
    the gap between neighbours is wider than ``WORD_GAP`` times the height of the box around
    them all: two numbers, "17 25", not one."""
    if not boxes:
        return ""
    widest = WORD_GAP * (max(b[3] for b in boxes) - min(b[1] for b in boxes))
    text = characters[0]
    for (before, after), character in zip(pairwise(boxes), characters[1:], strict=True):
        text += (" " if after[0] - before[2] > widest else "") + character
    return text


def digit_from(
    probs: np.ndarray, threshold: float, box: Box, top_k: int, plausible: bool = True
) -> Digit:
    """The digit whose calibrated class probabilities are ``probs``: the likeliest label, or
    None (rejected) below ``threshold`` or where its ink is shaped like no digit (not
    ``plausible``), whatever the model says; with the ``top_k`` likeliest labels."""
    order = np.argsort(-probs)
    best = int(order[0])
    confidence = float(probs[best])
    return Digit(
        label=best if confidence >= threshold and plausible else None,
        confidence=confidence,
        box=tuple(int(v) for v in box),
        top=[(int(i), float(probs[i])) for i in order[:top_k]],
    )


def rounded(value: Any, significant: int = SIGNIFICANT) -> Any:
    """``value`` with every float in it (in dicts, lists and tuples) rounded to ``significant``
    significant digits."""
    if isinstance(value, float):
        return float(f"{value:.{significant}g}")
    if isinstance(value, dict):
        return {key: rounded(item, significant) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item, significant) for item in value]
    return value
