"""The page reader within a fixed budget whatever an image shows: thin and odd-shaped images read
(or found empty) without an error, patterns of thousands of marks or hundreds of lines refused
with a clear ``PageBudgetError`` (an ``ImageError``: that file's error), the line model run in
batches of bounded size, and the memory a read takes bounded and given back."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitrec.errors import ImageError, PageBudgetError
from digitrec.reading.detect import LineBox
from digitrec.reading.lines import BATCH_COLUMNS, width_batches
from digitrec.recognizer import Reading, Recognizer

PAGE_READERS = ("auto", "pages")


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load("default")


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def paper(rows: int, cols: int) -> np.ndarray:
    return np.full((rows, cols), 255, np.uint8)


def inked(rows: int, cols: int) -> np.ndarray:
    """A thin image with ink along its length and a mark across it."""
    image = paper(rows, cols)
    if rows >= cols:
        image[:, cols // 2] = 0
    else:
        image[rows // 2, :] = 0
    image[: max(1, rows // 3), : max(1, cols // 3)] = 0
    return image


def dot_grid(step: int = 8, dot: int = 3, side: int = 1200) -> np.ndarray:
    """22,500 dots the size a page of dots makes its writing: the worst case found."""
    image = paper(side, side)
    for dy in range(dot):
        for dx in range(dot):
            image[dy::step, dx::step] = 0
    return image


def checkerboard(square: int = 4, side: int = 1200) -> np.ndarray:
    return ((np.indices((side, side)).sum(0) // square) % 2 * 255).astype(np.uint8)


def bricks(side: int = 1200, course: int = 12) -> np.ndarray:
    image = paper(side, side)
    for row in range(0, side, course):
        image[row, :] = 0
        image[row : row + course, (row // course) % 2 * course :: 2 * course] = 0
    return image


def specks(count: int = 30_000, side: int = 1200) -> np.ndarray:
    image = paper(side, side)
    rows, cols = np.random.default_rng(0).integers(0, side, (2, count))
    image[rows, cols] = 0
    return image


def ruled(step: int = 30, side: int = 1200) -> np.ndarray:
    image = paper(side, side)
    image[::step, :] = 90
    return image


def squared(step: int = 30, side: int = 1200) -> np.ndarray:
    image = ruled(step, side)
    image[:, ::step] = 90
    return image


def many_lines(side: int = 1200) -> np.ndarray:
    """130 rows of two small blobs each far apart, and a long dotted line: lines that each
    come to thousands of columns at the line model's height."""
    image = paper(side, side)
    for row in range(4, side - 4, 9):
        image[row : row + 4, 10:14] = 0
        image[row : row + 4, side - 20 : side - 16] = 0
    image[side // 2 : side // 2 + 4, ::6] = 0
    return image


PATTERNS: dict[str, Callable[[], np.ndarray]] = {
    "dot grid": dot_grid,
    "checkerboard": checkerboard,
    "bricks": bricks,
    "specks": specks,
    "ruled paper": ruled,
    "squared paper": squared,
    "many lines": many_lines,
}

SHAPES = [(1, 1), (2, 2), (1, 1025), (1, 3000), (3000, 1), (2, 6000), (6000, 2), (16, 4799)]
SHAPES += [(50, 20000), (20000, 50), (3, 7), (7, 3), (5, 12000), (12000, 5)]


@pytest.mark.parametrize("reader", [*PAGE_READERS, "digits"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: f"{shape[0]}x{shape[1]}")
@pytest.mark.parametrize("fill", [paper, inked])
def test_thin_and_tiny_images_are_read_by_every_reader(recognizer, reader, shape, fill):
    reading = recognizer.read(png(fill(*shape)), reader=reader)
    assert isinstance(reading, Reading)


@pytest.mark.parametrize("reader", PAGE_READERS)
@pytest.mark.parametrize("name", PATTERNS)
def test_patterns_are_read_or_refused_as_over_the_budget(recognizer, reader, name):
    try:
        reading = recognizer.read(png(PATTERNS[name]()), reader=reader)
    except PageBudgetError as exc:
        assert "crop the part with the numbers" in str(exc)
    else:
        assert isinstance(reading, Reading)


def test_thousands_of_marks_are_a_clear_error_of_that_file(recognizer):
    with pytest.raises(PageBudgetError, match=r"\d{5} separate marks .* more than the 4000"):
        recognizer.read(png(dot_grid()), reader="pages")
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
    recognizer.read(png(page), reader="pages")
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
    assert isinstance(recognizer.read(png(np.asarray(strip)), reader="pages"), Reading)


def test_worst_pages_are_read_within_a_bounded_memory_given_back_after(tmp_path):
    pytest.importorskip("resource")  # to measure the peak memory
    for name in ("many_lines", "dot_grid"):
        Image.fromarray(globals()[name]()).save(tmp_path / f"{name}.png")
    script = f"""
import resource
from digitrec.errors import PageBudgetError
from digitrec.recognizer import Recognizer
recognizer = Recognizer.load("default")
recognizer.read({str(tmp_path / "many_lines.png")!r}, reader="digits")  # first-use allocations
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for name in ("many_lines", "dot_grid"):
    try:
        recognizer.read({str(tmp_path)!r} + "/" + name + ".png", reader="pages")
    except PageBudgetError:
        pass
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    extra = int(result.stdout.split()[-1])
    assert extra <= 500 * 2**20, f"reading took {extra / 2**20:.0f} MB more at its peak"


def test_the_model_sessions_keep_no_memory_arena(recognizer):
    assert not recognizer.session.get_session_options().enable_cpu_mem_arena
    assert not recognizer.pages.reader.session.get_session_options().enable_cpu_mem_arena
