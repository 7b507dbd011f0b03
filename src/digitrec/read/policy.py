"""The ``auto`` reader's policy: which reading of an image to give, the page reader's ("pages")
or the single-digit classifier's ("digits"), as one ordered table of rules (``RULES``). The
first rule that applies decides; each is named, says in one line what it looks for, and why it
gives what it gives (``Rule.reason``); ``benchmarks/policy_rules.py`` measures each.

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
    reading ``gives`` is given; ``reason`` says why."""

    name: str
    gives: str
    applies: Callable[[Case], bool]
    reason: str

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


# What each rule decides on validation pages and crops, and what changes without it, is measured
# by benchmarks/policy_rules.py (docs/benchmarks/policy-rules.md).
RULES: tuple[Rule, ...] = (
    Rule(
        "low wide crop",
        PAGES,
        _low_wide_crop,
        "the classifier gives end marks, separators and cell borders beside a number as digits; "
        "the page reader's line model learned such crops whole",
    ),
    Rule(
        "small lone digit",
        DIGITS,
        _small_lone_digit,
        "a user's crop of one digit: the classifier reads it best, and the page reader's time "
        "is spared; wider crops hold numbers, which are left to the page reader",
    ),
    Rule(
        "several lines",
        PAGES,
        _several_lines,
        "the classifier reads no page of several lines better, so it is not asked",
    ),
    Rule(
        "no digits",
        PAGES,
        _no_digits,
        "blank, noisy and printed pages: the page reader reads what lines there are, or nothing",
    ),
    Rule(
        "unsure digits",
        PAGES,
        _unsure_digits,
        "the classifier's doubt comes from scribbles and touching digits, which the page reader "
        "rejects or separates",
    ),
    Rule(
        "one sure digit each",
        PAGES,
        _one_sure_digit_each,
        "on a photo the classifier takes the page's edge for part of the digit",
    ),
    Rule(
        "fewer digits",
        PAGES,
        _fewer_digits,
        "the classifier joins neighbouring digits the page reader tells apart (photos)",
    ),
    Rule(
        "isolated digits",
        DIGITS,
        _isolated_digits,
        "large separate digits, as users draw them, are what the classifier reads best; the "
        "line filter keeps it from reading scribbles",
    ),
    Rule(
        "clean row",
        DIGITS,
        _clean_row,
        "a clean row of separate digits: the classifier reads each one alone",
    ),
    Rule("otherwise", PAGES, _otherwise, "the page reader rejects scribbles and printed text"),
)


def first_rule(case: Case, rules: tuple[Rule, ...] = RULES) -> Rule:
    """The first of ``rules`` that applies to ``case``; ``NeedsReading`` where one needs a reading the
    case does not hold yet. The last rule of ``RULES`` applies to every case."""
    return next(rule for rule in rules if rule.applies(case))


def markdown_table(rules: tuple[Rule, ...] = RULES) -> str:
    """The rules as a Markdown table, in order (the reading guide shows it)."""
    rows = ["| # | rule | where | reads | why |", "| --- | --- | --- | --- | --- |"]
    rows += [
        f"| {k} | {rule.name} | {_values(rule.looks_for)} | {rule.gives} | {rule.reason} |"
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
