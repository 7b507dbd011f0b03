"""The page layouts: what is written where. Each takes the digits to write with, the style and
the random generator, and returns the picture with the truth of its lines (top to bottom).

Digit pages: "photo" (a short number on a page photographed on a desk), "touching" (neighbours
touch or overlap), "comb" (one digit per printed box), "gaps" (wide and narrow gaps),
"multiline" (two to four lines), "user" (the user-style renders of ``digitrec.synth.user_digits``).
Pages without digits, whose text is "": "letters" (printed letters and words), "blank",
"noise", "scribble". Digit pages may carry distractors: specks, stamps, scribbles, words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from digitrec.errors import DigitrecError
from digitrec.read.boxes import box_around
from digitrec.synth import printing
from digitrec.synth.sheet import LineTruth, Sheet
from digitrec.synth.style import PageStyle, Print
from digitrec.synth.user_digits import digit_string_image, user_digit_render
from digitrec.synth.writing import Written, write_number

PAGE_HEIGHT = (26.0, 56.0)  # digit height on a page, pixels
Picture = tuple[np.ndarray, list[LineTruth]]


class Digits:
    """The MNIST digits a page is written with: uint8 images (N, 28, 28) and labels 0..9."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise DigitrecError(
                f"digits must be uint8 images of shape (N, 28, 28), not {images.dtype} "
                f"{images.shape}"
            )
        if len(images) == 0:
            raise DigitrecError("no digits to write with: the image array is empty")
        if labels.shape != (len(images),) or not np.isin(labels, np.arange(10)).all():
            raise DigitrecError(
                f"labels must be {len(images)} digits 0..9 (one per image), not an array of "
                f"shape {labels.shape}"
            )
        self.images, self.labels = images, labels

    def draw(self, count: int, rng: np.random.Generator) -> tuple[list[np.ndarray], str]:
        """``count`` random digits and the text they spell."""
        chosen = self.pick(count, rng)
        return [self.images[i] for i in chosen], "".join(str(self.labels[i]) for i in chosen)

    def pick(self, count: int, rng: np.random.Generator) -> list[int]:
        """The indices of ``count`` random digits."""
        return [int(i) for i in rng.integers(0, len(self.images), count)]

    def fellows(self, index: int) -> np.ndarray:
        """The indices of the digits a number holding digit ``index`` may be written with."""
        return np.arange(len(self.images))


class WriterDigits(Digits):
    """Digits with their writers' ids (an array aligned with the images; negative: unknown, as
    MNIST's): each number is written with the digits of one writer, chosen with a chance in
    proportion to their digits; the digits of unknown writers are drawn from all of them."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, writers: np.ndarray):
        super().__init__(images, labels)
        writers = np.asarray(writers)
        if writers.shape != (len(self.images),) or not np.issubdtype(writers.dtype, np.integer):
            raise DigitrecError(
                f"writers must be {len(self.images)} integer ids (one per image, negative for "
                f"none known), not an array of {writers.dtype} {writers.shape}"
            )
        self.writers = writers
        order = np.argsort(writers, kind="stable")
        ids, starts = np.unique(writers[order], return_index=True)
        groups = np.split(order, starts[1:])
        self.groups = {int(w): g for w, g in zip(ids, groups, strict=True) if w >= 0}
        self.unknown = np.flatnonzero(writers < 0)

    def pick(self, count: int, rng: np.random.Generator) -> list[int]:
        """The indices of ``count`` digits of one writer (any digits if the writer is unknown)."""
        writer = int(self.writers[rng.integers(len(self.writers))])
        pool = self.groups[writer] if writer >= 0 else self.unknown
        return [int(i) for i in pool[rng.integers(0, len(pool), count)]]

    def fellows(self, index: int) -> np.ndarray:
        """The indices of the digits of the writer of digit ``index`` (or of no writer known)."""
        writer = int(self.writers[index])
        return self.groups[writer] if writer >= 0 else self.unknown


@dataclass
class Entry:
    """A number to put on a page: its writing, text, form field and comb pitch."""

    written: Written
    text: str
    field: str = "none"
    pitch: float | None = None


def label(style: Print, height: float, rng: np.random.Generator) -> np.ndarray:
    """A printed form label (words, no digit) a little smaller than writing ``height`` high."""
    return printing.set_text(printing.words(style, rng), height * rng.uniform(0.5, 0.9), style, rng)


def _number(
    digits: Digits,
    style: PageStyle,
    rng: np.random.Generator,
    height: float,
    count: tuple[int, int],
    gaps: tuple[float, float] | None = None,
    field: str = "none",
) -> Entry:
    """A number of ``count`` (a range) digits written ``height`` pixels high."""
    images, text = digits.draw(int(rng.integers(count[0], count[1] + 1)), rng)
    pitch = rng.uniform(1.05, 1.5) * height if field == "comb" else None
    return Entry(write_number(images, height, rng, style.hand, gaps, pitch), text, field, pitch)


def _page(
    entries: list[Entry],
    style: PageStyle,
    rng: np.random.Generator,
    ruled: bool = False,
    spacing: tuple[float, float] = (0.4, 1.5),
) -> Sheet:
    """A sheet holding the numbers top to bottom, indented, with margins; on ruled paper (each
    number standing on a rule) if ``ruled``. Gaps between lines are ``spacing`` heights."""
    h = float(np.median([e.written.height for e in entries]))
    boxed = any(e.field != "none" for e in entries)
    rows_each = [e.written.ink.shape[0] for e in entries]
    rule = max(rows_each) + rng.uniform(0.4, 1.0) * h + (0.8 * h if boxed else 0)
    margin = rng.uniform(1.0, 4.0, 4) * h
    tops, y = [], margin[1]
    for rows in rows_each:
        if ruled:
            y += rule * rng.integers(0, 2)
            tops.append(round(y + rule - rows))
            y += rule
        else:
            tops.append(round(y))
            y += rows + rng.uniform(*spacing) * h + (0.8 * h if boxed else 0)
    lefts = [round(margin[0] + rng.uniform(0, 3) * h) for _ in entries]
    cols = max(left + e.written.ink.shape[1] for left, e in zip(lefts, entries, strict=True))
    shape = (round(max(tops[-1] + rows_each[-1], y) + margin[3]), round(cols + margin[2]))
    sheet = Sheet(shape, h, style, rng)
    if ruled:
        printing.rules(sheet.rules, margin[1] + rule, rule, sheet.rule_width, False)
    for entry, left, top in zip(entries, lefts, tops, strict=True):
        sheet.write(entry.written, left, top, entry.text)
        sheet.field(entry.field, entry.written, left, top, entry.pitch)
    return sheet


def _distract(sheet: Sheet, style: PageStyle, rng: np.random.Generator) -> Sheet:
    """Maybe add distractors clear of the writing: specks, a stamp, a scribble, printed words."""
    if rng.random() >= style.print.distractor_probability:
        return sheet
    h = sheet.height
    for kind in rng.choice(4, rng.integers(1, 4), replace=False):
        if kind == 0:
            printing.specks(sheet.hand, rng, max(2.0, 0.12 * h))
            continue
        if kind == 1:
            layer, ink = sheet.stamps, printing.stamp(0.6 * h, style.print, rng)
        elif kind == 2:
            size = (round(rng.uniform(0.8, 2) * h), round(rng.uniform(1, 5) * h))
            layer = sheet.hand
            ink = printing.scribble(size, max(1, round(h / 12)), rng)
        else:
            layer, ink = sheet.text, label(style.print, h, rng)
        spot = sheet.free_spot(ink.shape)
        if spot is not None:
            sheet.paste(layer, ink, *spot)
    return sheet


def gaps(digits: Digits, style: PageStyle, rng: np.random.Generator) -> Picture:
    """One to three numbers whose gaps run from narrow to a digit wide."""
    h = rng.uniform(*PAGE_HEIGHT)
    fields = ("none", "none", "box", "underline")
    entries = [
        _number(digits, style, rng, h, (3, 10), (0.02, 0.9), fields[rng.integers(4)])
        for _ in range(rng.integers(1, 4))
    ]
    return _distract(_page(entries, style, rng), style, rng).picture()


def touching(digits: Digits, style: PageStyle, rng: np.random.Generator) -> Picture:
    """One to three numbers whose neighbouring digits touch or overlap a little."""
    h = rng.uniform(*PAGE_HEIGHT)
    entries = [
        _number(digits, style, rng, h, (3, 8), (-0.2, 0.02)) for _ in range(rng.integers(1, 4))
    ]
    return _distract(_page(entries, style, rng), style, rng).picture()


def comb(digits: Digits, style: PageStyle, rng: np.random.Generator) -> Picture:
    """One or two comb fields of a printed form, a digit per box, most with a printed label."""
    h = rng.uniform(*PAGE_HEIGHT)
    entries = [
        _number(digits, style, rng, h, (4, 10), field="comb") for _ in range(rng.integers(1, 3))
    ]
    sheet = _page(entries, style, rng, spacing=(1.5, 2.5))
    for _, pieces in sheet.lines:
        if rng.random() >= style.print.field_label_probability:
            continue
        ink = label(style.print, h, rng)
        x0, y0 = min(p.box[0] for p in pieces), min(p.box[1] for p in pieces)
        left, top = x0 - ink.shape[1] - round(0.8 * h), y0
        if left < 0 or rng.random() < 0.5:  # above the field rather than left of it
            left, top = x0, y0 - ink.shape[0] - round(0.6 * h)
        sheet.paste(sheet.text, ink, max(0, left), max(0, top))
    return _distract(sheet, style, rng).picture()


def multiline(digits: Digits, style: PageStyle, rng: np.random.Generator) -> Picture:
    """Two to four lines of numbers: varied spacing and indentation, sloped, maybe ruled."""
    h = rng.uniform(*PAGE_HEIGHT)
    entries = [_number(digits, style, rng, h, (2, 10)) for _ in range(rng.integers(2, 5))]
    sheet = _page(entries, style, rng, ruled=rng.random() < 0.4, spacing=(0.3, 1.5))
    return _distract(sheet, style, rng).picture()


def photo(digits: Digits, style: PageStyle, rng: np.random.Generator) -> Picture:
    """A digit or a short number on a page, photographed on a desk; colour ink and a colour
    image with the style's probability."""
    h = rng.uniform(32.0, 64.0)
    fields = ("none", "none", "none", "box", "underline", "comb")
    entry = _number(digits, style, rng, h, (1, 4), field=fields[rng.integers(len(fields))])
    width, rows = entry.written.ink.shape[1], entry.written.ink.shape[0]
    cols = round(max(width + 4 * h, rng.uniform(6, 10) * h))
    shape = (round(cols * rng.uniform(0.8, 1.45)), cols)
    shape = (max(shape[0], rows + round(3 * h)), shape[1])
    sheet = Sheet(shape, entry.written.height, style, rng)
    left = int(rng.integers(round(1.5 * h), cols - width - round(1.5 * h) + 1))
    top = int(rng.integers(round(1.5 * h), shape[0] - rows - round(1.5 * h) + 1))
    sheet.write(entry.written, left, top, entry.text)
    sheet.field(entry.field, entry.written, left, top, entry.pitch)
    colour = rng.random() < style.camera.colour_probability
    return _distract(sheet, style, rng).picture(photo=True, colour=colour)


def user(digits: Digits, style: PageStyle, rng: np.random.Generator) -> Picture:
    """A user's image as ``digitrec.synth.user_digits`` renders it: one digit, or a row of digits."""
    if rng.random() < 0.5:
        images, text = digits.draw(1, rng)
        image, box = user_digit_render(images[0], rng)
        boxes = [box]
    else:
        images, text = digits.draw(int(rng.integers(3, 11)), rng)
        image, boxes = digit_string_image(images, rng)
    return np.asarray(image), [LineTruth(text, box_around(boxes), boxes)]


def letters(digits: Digits, style: PageStyle, rng: np.random.Generator) -> Picture:
    """Printed letters and words, no digit: one to five lines in the style's fonts."""
    h = rng.uniform(20.0, 64.0)
    inks = [
        printing.set_text(
            printing.words(style.print, rng), h * rng.uniform(0.7, 1.3), style.print, rng
        )
        for _ in range(rng.integers(1, 6))
    ]
    return _blank_with(inks, style, rng, h).picture()


def blank(digits: Digits, style: PageStyle, rng: np.random.Generator) -> Picture:
    """Empty paper, maybe ruled or squared."""
    return _blank_with([], style, rng, rng.uniform(*PAGE_HEIGHT)).picture()


def scribble(digits: Digits, style: PageStyle, rng: np.random.Generator) -> Picture:
    """One to four large pen scribbles over the page."""
    h = rng.uniform(*PAGE_HEIGHT)
    sheet = _blank_with([], style, rng, h)
    for _ in range(rng.integers(1, 5)):
        ink = printing.scribble(sheet.shape, max(1, round(h * rng.uniform(0.06, 0.3))), rng)
        sheet.paste(sheet.hand, ink, 0, 0)
    return sheet.picture()


def noise(digits: Digits, style: PageStyle, rng: np.random.Generator) -> Picture:
    """Random grey levels: fine grain, or blotches smoothed over a few to tens of pixels."""
    shape = (int(rng.integers(200, 700)), int(rng.integers(200, 700)))
    values = rng.random(shape)
    if rng.random() < 0.6:
        values = ndimage.gaussian_filter(values, rng.uniform(1.0, 12.0))
        values = (values - values.min()) / max(float(np.ptp(values)), 1e-6)
    return np.round(values * 255).astype(np.uint8), []


def _blank_with(
    inks: list[np.ndarray], style: PageStyle, rng: np.random.Generator, height: float
) -> Sheet:
    """A sheet with printed inks stacked top to bottom (maybe none), maybe ruled or squared."""
    gap = rng.uniform(0.4, 1.5, len(inks) + 1) * height
    rows = sum(ink.shape[0] for ink in inks) + gap.sum() + rng.uniform(2, 8) * height
    cols = max([ink.shape[1] for ink in inks] + [0]) + rng.uniform(2, 10) * height
    sheet = Sheet((round(rows), round(cols)), height, style, rng)
    paper = rng.choice(("plain", "ruled", "squared"), p=(0.5, 0.3, 0.2))
    if paper != "plain":
        spacing = rng.uniform(*((0.45, 0.8) if paper == "squared" else (1.2, 2.0))) * height
        printing.rules(
            sheet.rules, rng.uniform(0, spacing), spacing, sheet.rule_width, paper == "squared"
        )
    y = gap[0]
    for ink, space in zip(inks, gap[1:], strict=True):
        sheet.paste(sheet.text, ink, round(rng.uniform(0.5, 2) * height), round(y))
        y += ink.shape[0] + space
    return sheet


LAYOUTS: dict[str, Callable[[Digits, PageStyle, np.random.Generator], Picture]] = {
    "photo": photo,
    "touching": touching,
    "comb": comb,
    "gaps": gaps,
    "multiline": multiline,
    "user": user,
    "letters": letters,
    "blank": blank,
    "noise": noise,
    "scribble": scribble,
}
