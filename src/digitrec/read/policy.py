"""The ``auto`` reader's policy: which reading of an image to give, the page reader's ("pages")
or the single-digit classifier's ("digits"), as one ordered table of rules (``RULES``). The
first rule that applies decides; each is named, says in one line what it looks for, and carries
the measurement that justifies it (``Rule.measured``).

A rule looks at a ``Case``: the image's size and, only where it asks for them, the two
readings and the line filter's judgement of the classifier's ink. Asking for a reading not yet
made raises ``NeedsReading``: the recognizer makes it (the classifier's in one batch for all the
images that need it) and asks again, so that a small image the first rule decides is never read
by the page reader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from digitrec.read.results import UNKNOWN, Reading

DIGITS, PAGES = "digits", "pages"  # what a rule gives: the classifier's reading, or the pages'
BIG_DIGIT = 0.3  # digits this fraction of the image high are not on a page
SMALL_SIDE = 320  # pixels: an image no longer than this is a crop or an icon, not a page
WIDE = 1.5  # an image this many times as wide as high is a line's crop, not a digit's
CROP_HEIGHT = 150  # pixels: a wide image no higher than this is a crop of one line, read whole


class NeedsReading(Exception):
    """A rule needs a reading the case does not hold yet: ``reader``'s, "digits" or "pages"."""

    def __init__(self, reader: str):
        super().__init__(reader)
        self.reader = reader


@dataclass
class Case:
    """One image as the rules see it: ``height`` and ``width`` in its own pixels, the page
    reader's and the classifier's readings once made, and ``judge``: whether the line filter
    takes the ink of the classifier's digits for writing (asked at most once)."""

    height: int
    width: int
    judge: Callable[[Reading], bool]
    readings: dict[str, Reading] = field(default_factory=dict)
    _written: bool | None = field(default=None, init=False, repr=False)

    @property
    def page(self) -> Reading:
        return self._reading(PAGES)

    @property
    def digits(self) -> Reading:
        return self._reading(DIGITS)

    def _reading(self, reader: str) -> Reading:
        if reader not in self.readings:
            raise NeedsReading(reader)
        return self.readings[reader]

    def written(self) -> bool:
        """Whether the line filter takes the classifier's ink for writing (no ink: no)."""
        if self._written is None:
            self._written = bool(self.digits.digits) and self.judge(self.digits)
        return self._written


@dataclass(frozen=True)
class Rule:
    """A rule of the policy: where ``applies`` (whose docstring says what it looks for), the
    reading ``gives`` is given; ``measured`` is what justifies it."""

    name: str
    gives: str
    applies: Callable[[Case], bool]
    measured: str

    @property
    def looks_for(self) -> str:
        return " ".join((self.applies.__doc__ or "").split())


def lone_digit(digits: Reading, height: int) -> bool:
    """Whether the classifier read one digit, sure of it, at least ``BIG_DIGIT`` of the image's
    ``height`` high."""
    if len(digits.digits) != 1 or UNKNOWN in digits.text:
        return False
    box = digits.digits[0].box
    return box[3] - box[1] >= BIG_DIGIT * height


def _low_wide_crop(case: Case) -> bool:
    """An image at most CROP_HEIGHT pixels high and WIDE times as wide as high: a crop of one
    number, which the page reader reads whole."""
    return case.height <= CROP_HEIGHT and case.width >= WIDE * case.height


def _small_lone_digit(case: Case) -> bool:
    """An image at most SMALL_SIDE long, under WIDE times as wide as high, where the classifier
    reads one sure digit at least BIG_DIGIT of it high in ink the line filter takes for writing."""
    return (
        max(case.height, case.width) <= SMALL_SIDE
        and case.width < WIDE * case.height
        and lone_digit(case.digits, case.height)
        and case.written()
    )


def _several_lines(case: Case) -> bool:
    """The page reader found more than one line."""
    return len(case.page.lines) > 1


def _no_digits(case: Case) -> bool:
    """The classifier finds no digit."""
    return not case.digits.digits


def _unsure_digits(case: Case) -> bool:
    """The classifier is unsure of one of its digits ("?")."""
    return UNKNOWN in case.digits.text


def _one_sure_digit_each(case: Case) -> bool:
    """Both read one digit, and the page reader is sure of it."""
    page, digits = case.page, case.digits
    return len(page.digits) == len(digits.digits) == 1 and UNKNOWN not in page.text


def _fewer_digits(case: Case) -> bool:
    """The classifier finds fewer digits than the page reader."""
    return len(case.digits.digits) < len(case.page.digits)


def _isolated_digits(case: Case) -> bool:
    """Every digit the classifier finds is at least BIG_DIGIT of the image high, and the page
    reader read a line or the line filter takes the classifier's ink for writing."""
    digits = case.digits.digits
    big = bool(digits) and all(d.box[3] - d.box[1] >= BIG_DIGIT * case.height for d in digits)
    return big and (bool(case.page.lines) or case.written())


def _clean_row(case: Case) -> bool:
    """The page reader found one line, and the classifier two or more digits."""
    return len(case.page.lines) == 1 and len(case.digits.digits) >= 2


def _otherwise(case: Case) -> bool:
    """Any image no rule above decided."""
    return True


# Measured on 1,000 validation pages, 100 of each layout (seeds 21-120), with the shipped models:
# the pages each rule decides, and how many pages are read exactly without it (912 with all).
RULES: tuple[Rule, ...] = (
    Rule(
        "low wide crop",
        PAGES,
        _low_wide_crop,
        "decides no page (none of 30 + 40 of each layout changed); on generated validation "
        "crops of one number (seeds 1040-1044 and 1050-1054) without it 9 + 19 fewer of 315 + "
        "431 numbers read exactly, 10 + 5 fewer of 115 + 126 crops without a digit read as "
        "none, 2 + 5 fewer of 120 + 160 CVL valid writers' lines, 1 more of 60 + 80 lines of "
        "scikit-learn's digits (the classifier gives end marks, borders and separators as digits)",
    ),
    Rule(
        "small lone digit",
        DIGITS,
        _small_lone_digit,
        "decides 39 pages (38 user); spares them the page reader (16 ms a page); images 1.5 "
        "times as wide as high are left to the page reader: of 20 such numbers among 1,200 "
        "validation document crops the classifier read 2 exactly, the page reader 16, and of 14 "
        "such crops without a digit the page reader read 13 as none, the classifier none",
    ),
    Rule(
        "several lines",
        PAGES,
        _several_lines,
        "decides 303 pages; spares them the classifier, no reading changes without it",
    ),
    Rule(
        "no digits",
        PAGES,
        _no_digits,
        "decides 240 pages (blank, noise, letters); no reading changes without it",
    ),
    Rule(
        "unsure digits",
        PAGES,
        _unsure_digits,
        "decides 266 pages; without it 40 fewer exact (scribble 18, comb 8, gaps 7)",
    ),
    Rule(
        "one sure digit each",
        PAGES,
        _one_sure_digit_each,
        "decides 10 photo pages; without it 8 fewer exact (the classifier takes the page's "
        "edge for part of the digit)",
    ),
    Rule(
        "fewer digits",
        PAGES,
        _fewer_digits,
        "decides 37 pages; without it 32 fewer exact (photo 29)",
    ),
    Rule(
        "isolated digits",
        DIGITS,
        _isolated_digits,
        "decides 26 pages (user 24); without it 2 readings change, 1 more exact (a scribble); "
        "the line filter keeps 99.5% of 400 validation digits drawn as users' images",
    ),
    Rule(
        "clean row",
        DIGITS,
        _clean_row,
        "decides 49 pages (user 33, gaps 12); without it 6 readings change, 1 more exact",
    ),
    Rule("otherwise", PAGES, _otherwise, "decides 26 pages (scribble 15, letters 8)"),
)


def first_rule(case: Case, rules: tuple[Rule, ...] = RULES) -> Rule:
    """The first of ``rules`` that applies to ``case``; ``NeedsReading`` where one needs a reading the
    case does not hold yet. The last rule of ``RULES`` applies to every case."""
    return next(rule for rule in rules if rule.applies(case))


def markdown_table(rules: tuple[Rule, ...] = RULES) -> str:
    """The rules as a Markdown table, in order (the reading guide shows it)."""
    rows = ["| # | rule | where | reads | measured |", "| --- | --- | --- | --- | --- |"]
    rows += [
        f"| {k} | {rule.name} | {_values(rule.looks_for)} | {rule.gives} | {rule.measured} |"
        for k, rule in enumerate(rules, 1)
    ]
    return "\n".join(rows)


def _values(text: str) -> str:
    """A rule's description with the constants it names given as their values."""
    return (
        text.replace("SMALL_SIDE", f"{SMALL_SIDE} pixels")
        .replace("BIG_DIGIT", f"{BIG_DIGIT:g}")
        .replace("WIDE", f"{WIDE:g}")
        .replace("CROP_HEIGHT", f"{CROP_HEIGHT}")
    )
