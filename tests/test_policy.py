"""The "auto" reader's policy: one ordered table of rules, the first that applies decides; each
rule on readings made up for it, the readings asked for only when a rule needs them, and the
reading guide's table the code's."""

from __future__ import annotations

from pathlib import Path

import pytest

from digitrec.read.policy import (
    DIGITS,
    PAGES,
    RULES,
    Case,
    NeedsReading,
    first_rule,
    lone_digit,
    markdown_table,
)
from digitrec.read.results import Digit, Line, Reading

GUIDE = Path(__file__).parent.parent / "docs" / "guides" / "reading.md"


def line(*heights: int, sure: bool = True, top: int = 2) -> Line:
    """A line of digits of these heights, side by side, in an image 100 pixels high."""
    digits = [
        Digit(4 if sure else None, 0.95, (20 * k, top, 20 * k + 15, top + h), [])
        for k, h in enumerate(heights)
    ]
    text = "".join("4" if sure else "?" for _ in heights)
    return Line(text, (0, top, 20 * len(heights), top + max(heights)), digits)


def reading(*lines: Line) -> Reading:
    return Reading.of_lines(list(lines))


def case(
    page: Reading | None = None,
    digits: Reading | None = None,
    written: bool = True,
    size: tuple[int, int] = (160, 400),
) -> Case:
    """An image ``size`` (rows, cols) with the readings given; the line filter says ``written``."""
    given = {name: made for name, made in ((PAGES, page), (DIGITS, digits)) if made is not None}
    return Case(*size, judge=lambda _: written, readings=given)


NOTHING = reading()


@pytest.mark.parametrize(
    ("expected", "example"),
    [
        ("small lone digit", case(digits=reading(line(90)), size=(100, 100))),
        ("several lines", case(page=reading(line(20), line(20, top=50)), digits=NOTHING)),
        ("no digits", case(page=reading(line(20)), digits=NOTHING)),
        ("unsure digits", case(page=reading(line(20)), digits=reading(line(90, sure=False)))),
        ("one sure digit each", case(page=reading(line(40)), digits=reading(line(90)))),
        ("fewer digits", case(page=reading(line(20, 20)), digits=reading(line(90)))),
        ("isolated digits", case(page=reading(line(40, sure=False)), digits=reading(line(90)))),
        ("isolated digits", case(page=NOTHING, digits=reading(line(90)))),
        ("clean row", case(page=reading(line(20, 20)), digits=reading(line(20, 20)))),
        ("otherwise", case(page=reading(line(20, sure=False)), digits=reading(line(20)))),
        ("otherwise", case(page=NOTHING, digits=reading(line(90)), written=False)),
    ],
)
def test_the_first_rule_that_applies_decides(expected, example):
    assert first_rule(example).name == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((100, 140), "small lone digit"),
        ((100, 150), "low wide crop"),
        ((150, 225), "low wide crop"),
        ((151, 400), "one sure digit each"),
        ((200, 299), "small lone digit"),
        ((200, 300), "one sure digit each"),
    ],
)
def test_a_wide_small_image_is_a_line_crop_not_a_lone_digit(size, expected):
    """A crop WIDE times as wide as high holds a number (joined digits the classifier takes for
    one, a line of which it reads one piece, an end mark it takes for a digit): the page reader
    reads it, at most CROP_HEIGHT high without asking the classifier."""
    example = case(page=reading(line(90)), digits=reading(line(90)), size=size)
    assert first_rule(example).name == expected


def test_a_low_wide_crop_is_decided_by_its_size_alone():
    assert first_rule(case(size=(120, 600))).name == "low wide crop"


def test_a_small_lone_digit_needs_ink_the_line_filter_takes_for_writing():
    scribble = case(page=NOTHING, digits=reading(line(90)), written=False, size=(100, 100))
    assert first_rule(scribble).name == "otherwise"


def test_a_rule_asks_for_a_reading_not_yet_made():
    with pytest.raises(NeedsReading) as small:
        first_rule(case(size=(100, 100)))  # its first rule asks for the classifier's digits
    with pytest.raises(NeedsReading) as large:
        first_rule(case(size=(1000, 800)))  # too large to be a crop: the page reader first
    with pytest.raises(NeedsReading) as one_line:
        first_rule(case(page=reading(line(20))))  # one line: is the classifier surer?
    assert (small.value.reader, large.value.reader, one_line.value.reader) == (
        DIGITS,
        PAGES,
        DIGITS,
    )
    assert first_rule(case(page=reading(line(20), line(20, top=50)))).name == "several lines"


def test_the_line_filter_is_asked_at_most_once():
    asked = []
    judged = Case(100, 100, judge=lambda digits: asked.append(digits) or False)
    judged.readings.update({DIGITS: reading(line(90)), PAGES: NOTHING})
    assert first_rule(judged).name == "otherwise"
    assert len(asked) == 1


def test_a_lone_digit_is_one_sure_digit_large_in_the_image():
    assert lone_digit(reading(line(90)), 100)
    assert not lone_digit(reading(line(90, sure=False)), 100)
    assert not lone_digit(reading(line(20)), 100)
    assert not lone_digit(reading(line(90, 90)), 100)
    assert not lone_digit(NOTHING, 100)


def test_every_rule_is_named_once_says_what_it_looks_for_and_why():
    assert len({rule.name for rule in RULES}) == len(RULES)
    for rule in RULES:
        assert rule.gives in (DIGITS, PAGES)
        assert rule.looks_for.endswith(".") and len(rule.looks_for) < 200
        assert rule.reason and not any(char.isdigit() for char in rule.reason)  # no figures
    assert RULES[-1].applies(case())  # the last rule decides whatever is left


def test_the_reading_guide_states_the_rules_as_the_code_has_them():
    assert markdown_table() in GUIDE.read_text(), (
        "docs/guides/reading.md's table of the auto reader's rules differs from the code's: "
        "paste in digitrec.read.policy.markdown_table()"
    )
