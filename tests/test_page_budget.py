"""The page reader within a fixed budget whatever an image shows: thin and odd-shaped images read
(or found empty) without an error, patterns of thousands of marks or hundreds of lines refused
with a clear ``PageBudgetError`` (an ``ImageError``: that file's error), the line model run in
batches of bounded size, and the memory a read takes bounded and given back."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitrec.errors import ImageError, PageBudgetError
from digitrec.read.line_finder import LineBox
from digitrec.read.line_reader import BATCH_COLUMNS, width_batches
from digitrec.read.recognizer import Recognizer
from digitrec.read.results import Reading

PAGE_READERS = ("auto", "pages")
BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from page_budget import (  # noqa: E402
    PATTERNS,
    SHAPES,
    dot_grid,
    inked,
    many_lines,
    measure,
    paper,
    png_bytes,
)

sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load("default")


@pytest.mark.parametrize("reader", [*PAGE_READERS, "digits"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: f"{shape[0]}x{shape[1]}")
@pytest.mark.parametrize("fill", [paper, inked])
def test_thin_and_tiny_images_are_read_by_every_reader(recognizer, reader, shape, fill):
    reading = recognizer.read(png_bytes(fill(*shape)), reader=reader)
    assert isinstance(reading, Reading)


@pytest.mark.parametrize("reader", PAGE_READERS)
@pytest.mark.parametrize("name", PATTERNS)
def test_patterns_are_read_or_refused_as_over_the_budget(recognizer, reader, name):
    try:
        reading = recognizer.read(png_bytes(PATTERNS[name]()), reader=reader)
    except PageBudgetError as exc:
        assert "crop the part with the numbers" in str(exc)
    else:
        assert isinstance(reading, Reading)


def test_thousands_of_marks_are_a_clear_error_of_that_file(recognizer):
    with pytest.raises(PageBudgetError, match=r"\d{5} separate marks .* more than the 4000"):
        recognizer.read(png_bytes(dot_grid()), reader="pages")
    assert issubclass(PageBudgetError, ImageError)  # a bad image's error: the batch goes on


def test_the_line_model_runs_in_batches_of_bounded_size(recognizer, monkeypatch):
    shapes = []

    def outputs(batch):
        shapes.append(batch.shape)
        frames = batch.shape[2] // recognizer.pages.reader.stride
        posteriors = np.zeros((len(batch), frames, 11), np.float32)
        posteriors[..., -1] = 1  # all blank: nothing read
        return [posteriors, np.ones((len(batch), 1), np.float32)]

    monkeypatch.setattr(recognizer.pages.reader, "outputs", outputs)
    page = paper(1200, 1200)
    for row in range(20, 1180, 40):  # 29 lines of different widths
        page[row : row + 20, 20 : 60 + row] = 0
    recognizer.read(png_bytes(page), reader="pages")
    assert sum(n for n, *_ in shapes) >= 29
    assert all(n * width <= BATCH_COLUMNS or n == 1 for n, _, width, _ in shapes), shapes


def test_width_batches_hold_every_line_once_within_the_columns():
    widths = [4000, 100, 8000, 3000, 12000, 200, 200, 5000]
    batches = width_batches(widths, 8192)
    assert sorted(k for batch in batches for k in batch) == list(range(len(widths)))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(widths[k] for k in batch) <= 8192


def test_a_long_line_is_cut_where_it_is_lightest_into_parts_the_model_takes():
    crop = paper(10, 1000)
    crop[2:8, :] = 0
    crop[:, 700:705] = 255  # a gap: the cut is made there
    line = LineBox((5, 5, 1005, 15), crop, np.float64([[1, 0, 5], [0, 1, 5]]))
    parts = line.parts(80)
    assert [part.crop.shape[1] for part in parts] == [701, 299]
    assert np.array_equal(np.hstack([part.crop for part in parts]), crop)
    assert parts[1].page_box((0, 0, 10, 10)) == line.page_box((701, 0, 711, 10))
    assert line.parts(200) == [line]


def test_a_wide_strip_of_digits_is_read_not_refused(recognizer):
    strip = Image.new("L", (4799, 16), 255)
    ImageDraw.Draw(strip).line([(10, 2), (10, 14)], fill=0, width=2)
    assert isinstance(recognizer.read(png_bytes(np.asarray(strip)), reader="pages"), Reading)


def test_worst_pages_are_read_within_a_bounded_memory_given_back_after(tmp_path):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs to measure a read's own peak memory")
    for name, make in (("many_lines", many_lines), ("dot_grid", dot_grid)):
        Image.fromarray(make()).save(tmp_path / f"{name}.png")
        cost = measure(tmp_path / f"{name}.png", "pages")
        assert cost.outcome in ("PageBudgetError", "read: ''"), cost.outcome
        assert cost.peak <= 500, f"{name}: the read took {cost.peak:.0f} MB more at its peak"
        assert cost.kept <= 100, f"{name}: {cost.kept:.0f} MB more stayed resident after it"


def test_the_model_sessions_keep_no_memory_arena(recognizer):
    assert not recognizer.classifier.session.get_session_options().enable_cpu_mem_arena
    assert not recognizer.pages.reader.session.get_session_options().enable_cpu_mem_arena
