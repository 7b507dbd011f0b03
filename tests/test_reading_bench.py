"""The reading benchmark's parts: its pages, its scoring, and its Tesseract adapter."""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.datasets import load_digits

from digitrec.synth.pages import LAYOUTS

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    """benchmarks/reading.py as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("reading_bench", BENCHMARKS / "reading.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_every_page_layout_but_the_user_renders_has_a_row(bench):
    assert set(bench.LAYOUT_MEASURES) == set(LAYOUTS) - {"user"}


def test_the_digits_reader_scored_on_three_pages_of_every_row(bench, mnist_dir):
    made = bench.tasks("validation", 3, seed=0)
    names = [task.name for task in made]
    assert names[: len(bench.LAYOUT_MEASURES)] == list(bench.LAYOUT_MEASURES)
    # user-style, ballpoint pages and singles, scikit-learn single and lines:
    assert len(names) == len(bench.LAYOUT_MEASURES) + 5
    for task in made:
        assert len(task.cases) == 3
        digit_row = task.measure == "read exactly"
        for case in task.cases:
            assert case.image.dtype == np.uint8 and case.image.ndim in (2, 3)
            assert (case.truth != "") == digit_row
            assert set(case.truth) <= set("0123456789\n")
    assert any("\n" in case.truth for case in made[names.index("multiline")].cases)

    reader = bench.READERS["digits"]()
    lines = bench.table({"digits": reader}, made).splitlines()
    assert len(lines) == 2 + len(made)
    for line, task in zip(lines[2:], made, strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[:2] == [f"{task.name} (3)", task.measure]
        assert 0 <= float(cells[2].rstrip("%")) <= 100 and float(cells[3]) >= 0


def test_pages_are_the_same_for_the_same_seed_and_differ_by_split(bench, mnist_dir):
    validation, test = bench.mnist_digits("validation"), bench.mnist_digits("test")
    first = bench.pages("gaps", validation, 2, 7, "validation")
    again = bench.pages("gaps", validation, 2, 7, "validation")
    other = bench.pages("gaps", test, 2, 7, "test")
    assert [c.truth for c in first] == [c.truth for c in again]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    assert [c.truth for c in first] != [c.truth for c in other]


@pytest.mark.parametrize("split", ["validation", "test"])
def test_ballpoint_pages_are_the_digit_layouts_in_turn_with_the_fine_pens(
    bench, split, monkeypatch
):
    written = []

    def recording(layout, images, labels, seed, style):
        written.append((layout, style))
        return real(layout, images, labels, seed, style)

    real = bench.page_sample
    monkeypatch.setattr(bench, "page_sample", recording)
    images = np.zeros((20, 28, 28), np.uint8)
    images[:, 8:20, 12:16] = 255
    cases = bench.ballpoint_pages((images, np.arange(20) % 10), 6, 0, split)
    assert [layout for layout, _ in written] == [*bench.DIGIT_LAYOUTS, bench.DIGIT_LAYOUTS[0]]
    style = bench.page_style(split)
    for _, used in written:
        assert used.hand.pen == bench.FINE_PENS[split] != style.hand.pen
        assert used.camera == style.camera and used.print == style.print
    assert len(cases) == 6 and all(case.truth for case in cases)


def test_score_counts_the_images_meeting_the_measure(bench):
    blank = np.full((20, 20), 255, np.uint8)
    cases = [bench.Case(blank, "12"), bench.Case(blank, "3\n4"), bench.Case(blank, "")]
    answers = {"12": "12", "3\n4": "34", "": "?"}
    reader = iter(answers.values()).__next__
    share, ms = bench.score(lambda image: reader(), bench.Task("t", "read exactly", cases))
    assert share == pytest.approx(1 / 3) and ms >= 0


@pytest.mark.parametrize(
    ("measure", "text", "met"),
    [
        ("read exactly", "123", True),
        ("read exactly", "12?", False),
        ("empty or rejected", "", True),
        ("empty or rejected", "??\n?", True),
        ("empty or rejected", "?7", False),
        ("produce any digit (lower is better)", "?", False),
        ("produce any digit (lower is better)", "0", True),
    ],
)
def test_measures(bench, measure, text, met):
    assert bench.MEASURES[measure](text, "123") is met


def test_tesseract_output_loses_spaces_and_empty_lines_but_keeps_line_breaks(bench):
    assert bench.tesseract_text("12 3\n\n 45 6 \n\x0c") == "123\n456"
    assert bench.tesseract_text("\n \x0c") == ""


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="needs tesseract-ocr")
def test_tesseract_reads_a_printed_number_on_two_lines(bench):
    image = np.full((200, 420), 255, np.uint8)
    cv2.putText(image, "4071", (30, 80), cv2.FONT_HERSHEY_SIMPLEX, 2.5, 0, 6)
    cv2.putText(image, "2893", (30, 170), cv2.FONT_HERSHEY_SIMPLEX, 2.5, 0, 6)
    assert bench.READERS["tesseract"]()(image) == "4071\n2893"


def test_sklearn_digits_become_mnist_like_and_the_splits_share_none(bench):
    validation, test = bench.sklearn_digits("validation"), bench.sklearn_digits("test")
    every = load_digits()
    assert np.array_equal(np.concatenate([validation[0], test[0]]), bench.as_mnist(every.images))
    assert np.array_equal(np.concatenate([validation[1], test[1]]), every.target)
    assert abs(len(validation[0]) - len(test[0])) <= 1
    images = validation[0]
    assert images.shape[1:] == (28, 28) and images.dtype == np.uint8
    assert images[:, :4].max() == 0 and images[:, :, 24:].max() == 0  # a 4 px empty border
    assert images.max() == 255


def test_unknown_reader_names_are_refused_by_name(bench):
    assert bench.reader_names("digits, tesseract") == ["digits", "tesseract"]
    with pytest.raises(argparse.ArgumentTypeError, match=r"unknown reader.*ocr"):
        bench.reader_names("previous,ocr")


def test_the_real_rows_score_the_digits_read_and_hold_orands_held_out_fifth(
    bench, real_sets, tmp_path
):
    """``--real`` adds ORAND-CAR-A, CVL valid singles and lines, whose labels hold digits only;
    ``--finetuned`` adds the fifth of ORAND-CAR-A that finetune_strings.py holds out."""
    made = bench.real_rows(7, Path("a-run"), tmp_path)
    sizes = {task.name.split(" ")[0] + str(k): len(task.cases) for k, task in enumerate(made)}
    assert list(sizes.values()) == [1080, 7, 1, 216], sizes
    assert {task.measure for task in made} == {bench.DIGITS_EXACT}
    assert bench.MEASURES[bench.DIGITS_EXACT]("1.250-", "1250")
    assert not bench.MEASURES[bench.DIGITS_EXACT]("1.250-7", "1250")
    assert bench.real_rows(7, None, tmp_path / "none")[-1].name.startswith("CVL lines")
