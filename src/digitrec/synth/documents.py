"""Lines that look like the amounts and cells of real documents: cheques, forms, log books.

What real documents add to a written number (``ELEMENTS``; their ranges are the style's
``Document``): thousands and decimal separators and end marks written in the writer's pen;
neighbours joined by pen strokes, a stroke through the number; continental 1s with their
up-stroke and crossed 7s; tight cells whose borders touch or cut the digits, printed rules
through the number, small numbers in large cells, a scanner's black borders; cheques'
security backgrounds, faint ink on grey paper, phone photos of a cell; and printed text and
digits by the number (a currency sign, a serial number, an account line). The text of a line
is its handwritten digits only: marks and print are read as nothing.

- ``document_lines``: a line source (the signature of ``digitrec.synth.pages.line_samples``)
  whose digit lines hold such elements in the style's ``Document.share`` of them;
- ``writer_lines``: plain lines of 3 to 10 digits, each of one writer, for measuring how
  well one writer's numbers are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

import cv2
import numpy as np

from digitrec.errors import DigitrecError
from digitrec.synth import printing
from digitrec.synth.backgrounds import security_pattern
from digitrec.synth.layouts import Digits
from digitrec.synth.pages import LineSample, digit_source, empty_line, plain_line
from digitrec.synth.sheet import Sheet
from digitrec.synth.style import Document, PageStyle, page_style
from digitrec.synth.writing import Written, write_number

ELEMENTS = (
    "separators", "end_mark", "joins", "strike", "flag_ones", "bar_sevens", "tight_cell",
    "rule_through", "small_in_cell", "scanner_margin", "background", "grey_paper", "photo",
    "printed",
)  # fmt: skip
CELL_FIELDS = ("none", "box", "underline", "ruled", "table")  # a cell's field, when not tight
AA = printing.AA


def document_lines(
    digits: np.ndarray,
    labels: np.ndarray,
    count: int,
    seed: int,
    style: str | PageStyle = "train",
    writers: np.ndarray | None = None,
) -> Iterator[LineSample]:
    """``count`` lines as ``line_samples`` makes them (the same share of empty lines), of
    which the style's ``Document.share`` of digit lines hold real-document elements, each drawn
    with its chance in ``Document.elements``. With ``writers`` (each image's writer id, negative
    for none known), each number is written with one writer's digits."""
    source, ranges = digit_source(digits, labels, count, writers), page_style(style)
    rng = np.random.default_rng(seed)

    def line() -> LineSample:
        if rng.random() < ranges.print.empty_line_fraction:
            return empty_line(ranges, rng)
        if rng.random() < ranges.document.share:
            return document_line(source, ranges, rng)
        return plain_line(source, ranges, rng)

    return (line() for _ in range(count))


def writer_lines(
    digits: np.ndarray,
    labels: np.ndarray,
    writers: np.ndarray,
    count: int,
    seed: int,
    style: str | PageStyle = "test",
    lengths: tuple[int, int] = (3, 10),
) -> Iterator[LineSample]:
    """``count`` lines of ``lengths`` (a range, ends included) digits, each written with the
    digits of one writer (``writers``: each image's id), in the plain lines of the style."""
    if not 1 <= lengths[0] <= lengths[1]:
        raise DigitrecError(f"lengths must be a range of 1 or more digits, not {lengths}")
    source, ranges = digit_source(digits, labels, count, writers), page_style(style)
    rng = np.random.default_rng(seed)
    return (
        plain_line(source, ranges, rng, int(rng.integers(lengths[0], lengths[1] + 1)))
        for _ in range(count)
    )


def document_line(
    source: Digits,
    style: PageStyle,
    rng: np.random.Generator,
    elements: Iterable[str] | None = None,
) -> LineSample:
    """One line with real-document ``elements`` (drawn with the style's chances if None).
    Asked for by name, "flag_ones" and "bar_sevens" put a 1 and a 7 of the writer into the
    number; drawn by chance, they shape the 1s and 7s it holds, so as not to change how often
    each digit is written."""
    doc = style.document
    asked = elements is not None
    if elements is None:
        draws = rng.random(len(ELEMENTS))
        elements = [e for e, p, r in zip(ELEMENTS, doc.elements, draws, strict=True) if r < p]
    wanted = set(elements)
    if wanted - set(ELEMENTS):
        raise DigitrecError(f"unknown elements {sorted(wanted - set(ELEMENTS))}")
    if not asked and "strike" in wanted:  # one line through the digits at most
        wanted -= {"rule_through", "tight_cell"}
    hand = style.hand
    height = rng.uniform(*hand.line_height)
    count = int(rng.integers(hand.digits[0], hand.digits[1] + 1))
    if "separators" in wanted:  # thousands
        count = max(count, 4)
    if "strike" in wanted:  # through one or two digits, a stroke would hide them
        count = max(count, 3)
    if "joins" in wanted:
        count = max(count, 2)
    chosen = source.pick(count, rng)
    for digit, element in ((1, "flag_ones"), (7, "bar_sevens")):
        if element in wanted and asked:
            _include(source, chosen, digit, rng)
    images = [_shaped(source, i, wanted, doc, rng) for i in chosen]
    text = "".join(str(source.labels[i]) for i in chosen)
    marks = _separators(count, doc, rng) if "separators" in wanted else {}
    spaces = {k: (2.5 * doc.separator_size[1] + rng.uniform(0.15, 0.3)) * height for k in marks}
    gaps = (0.05, 0.18) if "joins" in wanted else None
    written = write_number(images, height, rng, hand, gaps, spaces=spaces)
    h = written.height
    margins = rng.uniform(0.1, 0.35, 4) * h
    if "small_in_cell" in wanted:  # left, top, right, bottom: wider on the sides
        margins = rng.uniform(*doc.small_cell, 4) * h * (2, 1, 2, 1)
    end = _end_mark(doc, h, rng) if "end_mark" in wanted else None
    printed = _printed(style, h, rng) if "printed" in wanted else {}
    extra = np.zeros(4)  # left, top, right, bottom
    if end is not None:
        extra[2] = end[1] + 0.3 * h
    if "prefix" in printed:
        extra[0] = printed["prefix"].shape[1] + rng.uniform(0.2, 0.5) * h
    if "serial" in printed:
        extra[1] = printed["serial"].shape[0] + 0.15 * h
    if "account" in printed:
        extra[3] = rng.uniform(0.4, 1.0) * printed["account"].shape[0] + 0.2 * h
    left, top = round(margins[0] + extra[0]), round(margins[1] + extra[1])
    rows = top + written.ink.shape[0] + round(margins[3] + extra[3])
    cols = left + written.ink.shape[1] + round(margins[2] + extra[2])
    sheet = Sheet((rows, cols), h, _sheet_style(style, wanted, rng), rng)
    sheet.write(written, left, top, text)
    pen = _pen_width(written.ink)
    writing = _Writing(written, left, top, pen)
    _cells(sheet, writing, wanted, rng)
    for k, mark in marks.items():
        writing.separator(sheet.hand, k, mark, rng.uniform(*doc.separator_size) * h)
    if end is not None:
        writing.end_mark(sheet.hand, end, rng.uniform(*doc.dash_height), rng)
    if "joins" in wanted:
        writing.joins(sheet.hand, rng.uniform(*doc.join_height), rng)
    if "strike" in wanted:
        writing.strike(sheet.hand, rng.uniform(*doc.strike_height), rng.uniform(*doc.strike_bend))
    _place_printed(sheet, writing, printed, rng)
    if "background" in wanted:
        kind = doc.backgrounds[rng.integers(len(doc.backgrounds))]
        period = rng.uniform(*doc.background_period) * max(1.0, h / 40)
        colour = doc.background_colours[rng.integers(len(doc.background_colours))]
        sheet.tints.append((security_pattern(kind, sheet.shape, period, rng), colour))
    tilt = rng.uniform(*doc.photo_tilt) if "photo" in wanted else 0.0
    image, (truth,) = sheet.picture(tilt=tilt)
    boxes = truth.digit_boxes
    if "scanner_margin" in wanted:
        image, boxes = _scanner_margins(image, boxes, rng.uniform(*doc.margin_width, 2) * h, rng)
    absent = {"flag_ones"} if "1" not in text else set()
    absent |= {"bar_sevens"} if "7" not in text else set()
    shown = tuple(e for e in ELEMENTS if e in wanted - absent)
    return LineSample(image, truth.text, boxes, chosen, shown)


# --- the digits ----------------------------------------------------------------------------------


def _include(source: Digits, chosen: list[int], digit: int, rng: np.random.Generator) -> None:
    """Put a ``digit`` of the same writer in the number's place of a random digit, if the
    writer wrote one and the number holds none."""
    if any(source.labels[i] == digit for i in chosen):
        return
    pool = source.fellows(chosen[0])
    pool = pool[source.labels[pool] == digit]
    if len(pool):
        chosen[rng.integers(len(chosen))] = int(pool[rng.integers(len(pool))])


def _shaped(
    source: Digits, index: int, wanted: set[str], doc: Document, rng: np.random.Generator
) -> np.ndarray:
    """The digit image, a 1 with a continental up-stroke or a 7 with a bar if asked for."""
    image, label = source.images[index], int(source.labels[index])
    if label == 1 and "flag_ones" in wanted:
        return flagged_one(image, rng.uniform(*doc.flag_length), rng.uniform(*doc.flag_angle))
    if label == 7 and "bar_sevens" in wanted:
        return crossed_seven(image, rng.uniform(*doc.bar_length), rng.uniform(*doc.bar_tilt))
    return image


def flagged_one(digit28: np.ndarray, length: float, angle: float) -> np.ndarray:
    """A 1 (uint8 28×28) with the up-stroke of the continental 1: from the top of its stem,
    ``length`` of its height long, down to the left at ``angle`` degrees below the horizontal,
    in the stroke width of the digit."""
    rows, cols = np.nonzero(digit28 > 100)
    if len(rows) == 0:
        return digit28
    top = rows.min()
    x = float(cols[rows <= top + 1].mean())
    size = (rows.max() - top + 1) * length
    end = (x - size * np.cos(np.radians(angle)), top + size * np.sin(np.radians(angle)))
    return _drawn(digit28, [(x, top + 0.5), end])


def crossed_seven(digit28: np.ndarray, length: float, tilt: float) -> np.ndarray:
    """A 7 (uint8 28×28) with a bar across its stem at mid-height, ``length`` of its height
    long, tilted ``tilt`` degrees, in the stroke width of the digit."""
    rows, cols = np.nonzero(digit28 > 100)
    if len(rows) == 0:
        return digit28
    middle = (rows.min() + rows.max()) / 2
    near = np.abs(rows - middle) <= 1
    x = float(cols[near].mean()) if near.any() else float(cols.mean())
    half = (rows.max() - rows.min() + 1) * length / 2
    dx, dy = half * np.cos(np.radians(tilt)), half * np.sin(np.radians(tilt))
    return _drawn(digit28, [(x - dx, middle + dy), (x + dx, middle - dy)])


def _drawn(digit28: np.ndarray, points: list[tuple[float, float]]) -> np.ndarray:
    """The digit with a stroke through ``points`` as wide as its own strokes."""
    width = max(1, round(_pen_width(digit28 / np.float32(255))))
    canvas = digit28.copy()
    path = np.round(np.asarray(points) * AA).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [path], False, 255, width, cv2.LINE_AA, shift=4)
    return canvas


def _pen_width(ink: np.ndarray) -> float:
    """The width of the strokes in ink (0..1, white on black), in pixels: twice the inked area
    over the length of its outline."""
    solid = (ink > 0.5).astype(np.uint8)
    area = int(solid.sum())
    outline = area - int(cv2.erode(solid, np.ones((3, 3), np.uint8)).sum())
    return 2.0 * area / max(outline, 1)


def _separators(count: int, doc: Document, rng: np.random.Generator) -> dict[int, str]:
    """The separators of an amount of ``count`` digits, by the index of the digit after each:
    maybe a decimal mark before the last two digits, thousands marks every three digits."""
    kinds = list(doc.separators)
    thousands = kinds.pop(rng.integers(len(kinds)))
    marks = {}
    whole = count
    if rng.random() < 0.35 and kinds:
        whole = count - 2
        marks[whole] = kinds[rng.integers(len(kinds))]
    for k in range(whole - 3, 0, -3):
        marks[k] = thousands
    return marks


def _end_mark(doc: Document, h: float, rng: np.random.Generator) -> tuple[str, float]:
    """An end mark and its width in pixels."""
    kind = doc.end_marks[rng.integers(len(doc.end_marks))]
    length = rng.uniform(*(doc.stroke_length if kind == "stroke" else doc.dash_length)) * h
    return kind, length + (0.3 * h if kind in ("/-", ".-", ",-") else 0.0)


class _Writing:
    """The written number on the sheet: where its digits and baseline are, and its pen."""

    def __init__(self, written: Written, left: int, top: int, pen: float):
        self.written, self.left, self.top = written, left, top
        self.width = max(1, round(pen))
        self.h = written.height
        self.boxes = [
            (x0 + left, y0 + top, x1 + left, y1 + top) for x0, y0, x1, y1 in written.boxes
        ]

    def baseline(self, x: float) -> float:
        """The y of the baseline at ``x`` on the sheet."""
        start, slope = self.written.baseline
        return self.top + start + slope * (x - self.left)

    def stroke(self, layer: np.ndarray, points, width: int | None = None) -> None:
        """A pen stroke through ``points`` (x, y) on the layer, the pen's width if None."""
        canvas = np.zeros(layer.shape, np.uint8)
        path = np.round(np.asarray(points, np.float64) * AA).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [path], False, 255, width or self.width, cv2.LINE_AA, shift=4)
        np.maximum(layer, canvas / np.float32(255), out=layer)

    def dot(self, layer: np.ndarray, x: float, y: float, size: float) -> None:
        """A dot ``size`` pixels across (at least the pen's width) centred at (x, y)."""
        r = max(size, self.width) / 2
        self.stroke(layer, [(x - r / 2, y), (x + r / 2, y)])
        canvas = np.zeros(layer.shape, np.uint8)
        centre = (round(x * AA), round(y * AA))
        cv2.circle(canvas, centre, round(r * AA), 255, -1, cv2.LINE_AA, shift=4)
        np.maximum(layer, canvas / np.float32(255), out=layer)

    def separator(self, layer: np.ndarray, k: int, mark: str, size: float) -> None:
        """The separator ``mark`` between digits k-1 and k."""
        x = (self.boxes[k - 1][2] + self.boxes[k][0]) / 2
        y = self.baseline(x) - size / 2
        if mark == "'":
            top = self.baseline(x) - 0.95 * self.h
            self.stroke(layer, [(x + 0.3 * size, top), (x - 0.3 * size, top + 2.5 * size)])
            return
        self.dot(layer, x, y, size)
        if mark == ",":
            self.stroke(layer, [(x + size / 3, y), (x, y + size), (x - size * 0.7, y + 2 * size)])

    def end_mark(
        self, layer: np.ndarray, end: tuple[str, float], height: float, rng: np.random.Generator
    ) -> None:
        """The end mark after the last digit: dashes (``height`` of the digits above the
        baseline), after a dot, a comma or a slash; or a trailing stroke."""
        kind, width = end
        x = self.boxes[-1][2] + rng.uniform(0.1, 0.25) * self.h
        base = self.baseline(x)
        rise = rng.uniform(-0.05, 0.05) * self.h
        if kind == "stroke":
            y = base - height * self.h
            self.stroke(layer, [(x, y), (x + width / 2, y - rise), (x + width, y - 2 * rise)])
            return
        lead = 0.3 * self.h if kind in ("/-", ".-", ",-") else 0.0
        if kind == "/-":
            self.stroke(layer, [(x, base), (x + 0.4 * self.h, base - 0.55 * self.h)])  # not a 1
        elif kind in (".-", ",-"):
            size = 0.12 * self.h
            self.dot(layer, x + size, base - size / 2, size)
            if kind == ",-":
                self.stroke(layer, [(x + size, base), (x, base + 1.5 * size)])
        middle = height * self.h
        dashes = [middle - 0.1 * self.h, middle + 0.1 * self.h] if kind == "=" else [middle]
        for y in dashes:
            self.stroke(layer, [(x + lead, base - y), (x + width, base - y - rise)])

    def joins(self, layer: np.ndarray, height: float, rng: np.random.Generator) -> None:
        """Pen strokes joining neighbours at ``height`` (of the digit height) above the
        baseline, lighter than the digits' strokes: cursive 00s and ligatures; at least one
        pair is joined."""
        pieces = self.written.pieces
        pairs = [i for i in range(len(pieces) - 1) if rng.random() < 0.5] or [0]
        for i in pairs[: len(pieces) - 1]:
            a = self._side(pieces[i], height, right=True)
            b = self._side(pieces[i + 1], height, right=False)
            if a is None or b is None or b[0] <= a[0]:
                continue
            sag = rng.uniform(-0.15, 0.15) * (b[0] - a[0])
            t = np.linspace(0, 1, 12)[:, None]
            control = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + sag)
            curve = (1 - t) ** 2 * np.array(a) + 2 * t * (1 - t) * np.array(control)
            self.stroke(layer, curve + t**2 * np.array(b), max(1, round(0.7 * self.width)))

    def _side(self, piece, height: float, right: bool) -> tuple[float, float] | None:
        """The outermost ink of a digit on its right (or left) side nearest ``height``."""
        x = piece.left + piece.ink.shape[1] / 2
        row = round(self.baseline(x) - self.top - height * self.h) - piece.top
        inked = np.flatnonzero((piece.ink > 0.5).any(axis=1))
        if len(inked) == 0:
            return None
        row = int(inked[np.argmin(np.abs(inked - row))])
        cols = np.flatnonzero(piece.ink[row] > 0.5)
        col = cols.max() if right else cols.min()
        return (self.left + piece.left + col, self.top + piece.top + row)

    def strike(self, layer: np.ndarray, height: float, bend: float) -> None:
        """A pen stroke through the number at ``height`` above the baseline, sagging ``bend``
        (both of the digit height) in the middle."""
        x0, x1 = self.boxes[0][0] - 0.15 * self.h, self.boxes[-1][2] + 0.15 * self.h
        xs = np.linspace(x0, x1, 16)
        sag = bend * self.h * 4 * (xs - x0) * (x1 - xs) / (x1 - x0) ** 2
        ys = [self.baseline(x) - height * self.h + s for x, s in zip(xs, sag, strict=True)]
        self.stroke(layer, np.stack([xs, ys], axis=1))


# --- the cell and the paper ------------------------------------------------------------------


def _sheet_style(style: PageStyle, wanted: set[str], rng: np.random.Generator) -> PageStyle:
    """The style of the sheet: grey paper and faint ink, the light and lens of a phone."""
    doc, cam = style.document, style.camera
    if "grey_paper" in wanted:
        cam = replace(cam, paper=doc.grey_paper, fade=doc.faint)
    if "photo" in wanted:
        cam = replace(
            cam,
            gradient=(0.15, 0.5),
            shadow_probability=0.7,
            blur_radius=(0.6, 1.6),
            noise=(0.02, 0.06),
            jpeg_probability=1.0,
            jpeg_quality=(30, 70),
        )
    return replace(style, camera=cam)


def _cells(sheet: Sheet, writing: _Writing, wanted: set[str], rng: np.random.Generator) -> None:
    """The printed cell around the number: tight (its border touching or cutting the digits),
    large around a small number, or a field of the style; and a rule through the number."""
    doc, h = sheet.style.document, writing.h
    x0, y0 = min(b[0] for b in writing.boxes), min(b[1] for b in writing.boxes)
    x1, y1 = max(b[2] for b in writing.boxes), max(b[3] for b in writing.boxes)
    if "tight_cell" in wanted:
        pad = rng.uniform(*doc.cell_pad, 4) * h
        box = (x0 - pad[0], y0 - pad[1], x1 + pad[2], y1 + pad[3])
        printing.rectangle(sheet.rules, box, sheet.rule_width)
    elif "small_in_cell" in wanted:
        rows, cols = sheet.shape
        inset = rng.uniform(0.0, 0.3, 4) * h
        box = (inset[0], inset[1], cols - 1 - inset[2], rows - 1 - inset[3])
        printing.rectangle(sheet.rules, box, sheet.rule_width)
    else:
        weights = np.asarray(sheet.style.print.contexts, float)[[0, 2, 3, 4, 6]]
        kind = CELL_FIELDS[rng.choice(len(CELL_FIELDS), p=weights / weights.sum())]
        sheet.field(kind, writing.written, writing.left, writing.top)
    if "rule_through" in wanted:
        y = rng.uniform(y0 + 0.2 * (y1 - y0), y1 - 0.2 * (y1 - y0))
        tilt = rng.uniform(-0.01, 0.01) * sheet.shape[1]
        printing.line(sheet.rules, (0, y - tilt), (sheet.shape[1], y + tilt), sheet.rule_width)


def _printed(style: PageStyle, h: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Printed matter by the number, one to three of: a currency sign or "No." before it, a
    serial number above it, an account line in a MICR-like font below it (cut by the crop)."""
    doc = style.document
    kinds = [k for k in ("prefix", "serial", "account") if rng.random() < 0.5] or ["prefix"]
    printed = {}
    if "prefix" in kinds:
        prefix = doc.prefixes[rng.integers(len(doc.prefixes))]
        printed["prefix"] = printing.set_text(prefix, h * rng.uniform(0.5, 0.9), style.print, rng)
    if "serial" in kinds:
        serial = doc.numbering.format(int(rng.integers(1, 10**6)))
        printed["serial"] = printing.set_text(serial, h * rng.uniform(0.3, 0.5), style.print, rng)
    if "account" in kinds:
        a, b = doc.micr_marks
        groups = [rng.integers(0, 10, n) for n in (9, 4, 7)]
        digits = ["".join(str(d) for d in group) for group in groups]
        account = f"{a}{digits[0]}{a} {digits[1]}{b}{digits[2]}{b}"
        micr = replace(style.print, fonts=doc.micr_fonts)
        printed["account"] = printing.set_text(account, h * rng.uniform(0.35, 0.55), micr, rng)
    return printed


def _place_printed(
    sheet: Sheet, writing: _Writing, printed: dict[str, np.ndarray], rng: np.random.Generator
) -> None:
    """The printed matter in the room left for it: before, above and below the number."""
    x0 = min(b[0] for b in writing.boxes)
    y1 = max(b[3] for b in writing.boxes)
    if "prefix" in printed:
        ink = printed["prefix"]
        bottom = writing.baseline(x0) + rng.uniform(-0.05, 0.05) * writing.h
        top = int(np.clip(round(bottom - ink.shape[0]), 0, sheet.shape[0] - 1))
        left = max(0, round(x0 - rng.uniform(0.2, 0.4) * writing.h - ink.shape[1]))
        sheet.paste(sheet.text, ink, left, top)
    if "serial" in printed:
        ink = printed["serial"]
        left = int(rng.integers(0, max(1, sheet.shape[1] - ink.shape[1])))
        sheet.paste(sheet.text, ink, left, max(0, round(0.05 * writing.h)))
    if "account" in printed:
        ink = printed["account"]
        top = min(sheet.shape[0] - 1, round(y1 + 0.2 * writing.h))
        sheet.paste(sheet.text, ink, int(rng.integers(0, max(1, writing.h))), top)


def _scanner_margins(
    image: np.ndarray, boxes: list, widths: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, list]:
    """The picture with a scanner's black border beyond the paper on one or two sides (left
    or right, top or bottom), ``widths`` pixels wide; the digits' boxes moved with it."""
    left = right = top = bottom = 0
    if rng.random() < 0.7:
        left, right = (round(widths[0]), 0) if rng.random() < 0.5 else (0, round(widths[0]))
    if rng.random() < 0.5 or not (left or right):
        top, bottom = (round(widths[1]), 0) if rng.random() < 0.5 else (0, round(widths[1]))
    rows, cols = image.shape
    black = rng.uniform(5, 50)
    out = np.full((rows + top + bottom, cols + left + right), black, np.float32)
    out += rng.normal(0, 4, out.shape).astype(np.float32)
    out[top : top + rows, left : left + cols] = image
    moved = [(x0 + left, y0 + top, x1 + left, y1 + top) for x0, y0, x1, y1 in boxes]
    return np.clip(np.round(out), 0, 255).astype(np.uint8), moved
