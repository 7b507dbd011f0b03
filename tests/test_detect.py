"""Line finding on fixed generated pages: the written lines are found, each once, top to
bottom, through rules, comb boxes, a photographed page's desk and a skewed scan."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest
from synthetic import font_digit

from digitrec.errors import ImageError
from digitrec.read.boxes import iou
from digitrec.read.line_finder import find_lines
from digitrec.synth.pages import page_sample
from digitrec.synth.style import TRAIN

DIGITS = np.stack([font_digit(d) for d in range(10)])
LABELS = np.arange(10)
# Pages without distractors or form labels: every line on them is a written number.
PLAIN = replace(
    TRAIN, print=replace(TRAIN.print, distractor_probability=0.0, field_label_probability=0.0)
)


def finds_the_written_lines(image: np.ndarray, truth: list) -> bool:
    """Whether exactly the true lines are found, top to bottom, each with IoU >= 0.5."""
    found = [line.box for line in find_lines(image)]
    return len(found) == len(truth) and all(
        iou(true.box, box) >= 0.5 for true, box in zip(truth, found, strict=True)
    )


@pytest.mark.parametrize(
    ("layout", "seeds"),
    [
        ("multiline", range(5)),
        ("comb", range(5)),
        ("touching", range(5)),
        ("gaps", range(5)),
        ("photo", (0, 3, 4, 5, 6)),
    ],
)
def test_finds_each_written_line_once_top_to_bottom(layout, seeds):
    for seed in seeds:
        page = page_sample(layout, DIGITS, LABELS, seed, PLAIN)
        assert finds_the_written_lines(page.image, page.lines), f"{layout} page {seed}"


def test_finds_the_lines_of_a_skewed_scan_and_cuts_them_out_upright():
    for seed in (1, 4):
        page = page_sample("multiline", DIGITS, LABELS, seed, PLAIN)
        rows, cols = page.image.shape
        turn = cv2.getRotationMatrix2D((cols / 2, rows / 2), 8, 1.0)
        skewed = cv2.warpAffine(page.image, turn, (cols, rows), borderValue=255)
        lines = find_lines(skewed)
        assert len(lines) == len(page.lines)
        for line, truth in zip(lines, page.lines, strict=True):
            # Upright, a crop is about as high as the line; tilted 8° a long line is far higher.
            height = truth.box[3] - truth.box[1]
            assert line.crop.dtype == np.uint8 and line.crop.shape[0] < 1.5 * height
            assert line.crop.min() < np.median(line.crop) - 60


def test_crop_holds_the_line_with_a_margin():
    page = next(
        p for s in range(20) if len((p := page_sample("gaps", DIGITS, LABELS, s, PLAIN)).lines) == 1
    )
    (line,) = find_lines(page.image)
    x0, y0, x1, y1 = line.box
    rows, cols = line.crop.shape
    assert y1 - y0 < rows <= 1.6 * (y1 - y0) and x1 - x0 < cols
    assert line.crop.min() <= page.image[y0:y1, x0:x1].min() + 10


def test_a_region_is_cut_out_with_a_margin_of_paper_as_far_as_the_page_goes():
    from digitrec.read.line_finder import region_crop

    page = np.arange(200 * 300).reshape(200, 300)
    np.testing.assert_array_equal(region_crop(page, (100, 50, 140, 90)), page[39:101, 89:151])
    np.testing.assert_array_equal(region_crop(page, (0, 0, 20, 40)), page[0:51, 0:31])


@pytest.mark.parametrize("seed", range(4))
def test_blank_and_ruled_paper_has_no_lines(seed):
    assert find_lines(page_sample("blank", DIGITS, LABELS, seed, PLAIN).image) == []


def test_an_even_image_has_no_lines():
    assert find_lines(np.full((300, 400), 255, np.uint8)) == []
    assert find_lines(np.zeros((50, 60), np.float32)) == []


def test_a_colour_photo_is_read_like_its_grey():
    page = next(
        p
        for s in range(20)
        if (p := page_sample("photo", DIGITS, LABELS, s, PLAIN)).image.ndim == 3
    )
    assert finds_the_written_lines(page.image, page.lines)


def test_an_array_that_is_no_image_is_a_clear_error():
    with pytest.raises(ImageError, match="unsupported array shape"):
        find_lines(np.zeros(10))


def test_finding_lines_never_imports_tensorflow():
    script = (
        "import sys, numpy as np\n"
        "from digitrec.read.line_finder import find_lines\n"
        "find_lines(np.full((64, 64), 255, np.uint8))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stderr
