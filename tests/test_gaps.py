"""Gaps in a line: neighbouring digits further apart than the line is high are two numbers, a
space between them in ``text`` (the page reader's and the classifier's, in Python and on the
command line); the digits and their boxes stay as they are."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from digitrec.cli import main
from digitrec.read.recognizer import Recognizer
from digitrec.read.results import WORD_GAP, line_text
from digitrec.synth.style import page_style
from digitrec.synth.writing import write_number

HEIGHT = 40  # pixels: a digit's height, as on a photographed form
MARGIN = 40  # paper around the line, pixels


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load("default")


def written_line(mnist, groups: list[str], gap: float) -> np.ndarray:
    """A grey line (dark ink on white) of ``groups`` of digits written by one hand, the digits
    of a group close together, the groups ``gap`` digit heights apart."""
    rng = np.random.default_rng(3)
    text = "".join(groups)
    images = [mnist.test_images[np.flatnonzero(mnist.test_labels == int(d))[0]] for d in text]
    written = write_number(images, HEIGHT, rng, page_style("validation").hand, gaps=(0.1, 0.2))
    ink, starts = written.ink, np.cumsum([len(group) for group in groups])[:-1]
    for start in reversed(starts):  # widen the gap before each group's first digit
        left = written.pieces[start].left
        blank = np.zeros((ink.shape[0], round(gap * HEIGHT)), ink.dtype)
        ink = np.hstack([ink[:, :left], blank, ink[:, left:]])
    paper = np.pad(np.clip(ink, 0, 1), MARGIN)
    return np.round(255 * (1 - paper)).astype(np.uint8)


def test_a_gap_wider_than_the_line_is_high_is_one_space_and_a_narrower_one_none():
    boxes = [(0, 0, 10, 20), (12, 0, 22, 20), (43, 2, 53, 20), (74, 0, 84, 20)]
    assert line_text(["1", "7", "2", "5"], boxes) == "17 2 5"  # gaps 2, 21 and 21 > 20
    assert line_text(["1", "7"], [(0, 0, 10, 20), (30, 0, 40, 20)]) == "17"  # 20: not wider
    assert line_text(["?"], [(0, 0, 10, 20)]) == "?" and line_text([], []) == ""
    assert WORD_GAP == 1.0


@pytest.mark.parametrize("reader", ["pages", "digits", "auto"])
def test_two_numbers_with_a_wide_gap_read_as_two_groups(recognizer, mnist, reader):
    reading = recognizer.read(written_line(mnist, ["17", "25"], 1.35), reader=reader)
    assert reading.text == "17 25"
    assert [d.label for d in reading.digits] == [1, 7, 2, 5]
    assert [line.text for line in reading.lines] == ["17 25"]


@pytest.mark.parametrize("reader", ["pages", "digits", "auto"])
def test_a_tight_number_stays_one_group(recognizer, mnist, reader):
    assert recognizer.read(written_line(mnist, ["1725"], 0.0), reader=reader).text == "1725"


def test_predict_shows_the_space_and_its_json_keeps_every_digit_and_box(mnist, tmp_path, capsys):
    path = tmp_path / "line.png"
    Image.fromarray(written_line(mnist, ["17", "25"], 1.35)).save(path)
    assert main(["predict", "--json", str(path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["text"] == result["lines"][0]["text"] == "17 25"
    assert len(result["digits"]) == 4 and all(len(d["box"]) == 4 for d in result["digits"])
    assert main(["predict", str(path)]) == 0
    assert "  17 25  " in capsys.readouterr().out
