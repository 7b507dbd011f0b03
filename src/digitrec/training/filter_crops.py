"""The crops the line filter learns from (NumPy and OpenCV only, no TensorFlow: worker processes
make them): the line finder's crops of generated pages of every layout, each labelled by the true
line it covers; on pages where no crop holds digits, the region of the ink the single-digit reader
takes for digits; and that region on drawing-pad images. See ``line_filter``.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import cv2
import numpy as np
from tqdm import tqdm

from digitrec.quiet import bar_shown
from digitrec.read.boxes import Box, area, box_around, overlap
from digitrec.read.decoding import array_to_gray
from digitrec.read.imaging import find_digits
from digitrec.read.line_finder import find_lines, region_crop
from digitrec.read.line_reader import prepare_line
from digitrec.synth.pages import LAYOUTS, PageSample, page_sample
from digitrec.synth.sheet import LineTruth
from digitrec.synth.style import PageStyle

# A found line covering at least this share of a true line (or lying this much within one)
# holds digits; one touching no true line holds none; crops in between teach nothing.
COVERED = 0.5
Crops = tuple[list[np.ndarray], np.ndarray]  # prepared crops (uint8) and their labels (0/1)


def prepared_crop(crop: np.ndarray) -> np.ndarray:
    """A crop as the line model takes it (``prepare_line``), stored as uint8."""
    return np.round(prepare_line(crop).image * 255).astype(np.uint8)


def holds_digits(box: Box, truths: list[LineTruth]) -> bool | None:
    """Whether a found line's box holds a true line's digits: True when it covers ``COVERED``
    of a true line or lies that much within one, False when it touches none, None between."""
    best = 0.0
    for truth in truths:
        common = overlap(box, truth.box)
        best = max(best, common / max(1, area(box)), common / max(1, area(truth.box)))
    if best >= COVERED:
        return True
    return False if best == 0 else None


def page_crops(
    digits: np.ndarray,
    labels: np.ndarray,
    per_layout: int,
    seed: int,
    style: str | PageStyle,
    progress: bool = False,
    workers: int = 1,
) -> Crops:
    """The crops the filter judges on ``per_layout`` generated pages of every layout (see
    ``labelled_crops``), prepared as the line model takes them (uint8, white ink), and whether
    each holds digits (1) or not (0); page ``i`` of a layout has seed ``seed + i``. ``workers``
    processes make the pages (the same crops, in the same order, however many)."""
    pages = [(layout, seed + i, style) for layout in LAYOUTS for i in range(per_layout)]
    name = style if isinstance(style, str) else "training"
    show = partial(
        tqdm,
        total=len(pages),
        desc=f"{name} pages",
        unit="page",
        disable=not (progress and bar_shown()),
    )
    if workers <= 1:
        return _gathered(show(_crops_of_page(page, digits, labels) for page in pages))
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, spawn, _share_digits, (digits, labels)) as pool:
        return _gathered(show(pool.map(_crops_of_shared_page, pages, chunksize=20)))


_SHARED: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # in a worker: the digits of its pages


def _share_digits(digits: np.ndarray, labels: np.ndarray) -> None:
    """A worker's start: the digits every page it makes draws from."""
    _SHARED["digits"] = digits, labels


def _crops_of_shared_page(page: tuple[str, int, str | PageStyle]) -> list[tuple[np.ndarray, int]]:
    return _crops_of_page(page, *_SHARED["digits"])


def _crops_of_page(
    page: tuple[str, int, str | PageStyle], digits: np.ndarray, labels: np.ndarray
) -> list[tuple[np.ndarray, int]]:
    """One page's labelled crops, prepared as the line model takes them."""
    layout, seed, style = page
    return [
        (prepared_crop(crop), int(label))
        for crop, label in labelled_crops(page_sample(layout, digits, labels, seed, style))
    ]


def _gathered(per_page: Iterable[list[tuple[np.ndarray, int]]]) -> Crops:
    crops = [crop for page in per_page for crop in page]
    return [image for image, _ in crops], np.asarray([label for _, label in crops], np.float32)


def drawn_crops(digits: np.ndarray, count: int, seed: int) -> Crops:
    """The region of the ink the single-digit reader reads in ``count`` drawing-pad images
    (``drawn_image``), prepared as the line model takes them: all hold digits (1)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        gray = drawn_image(digits, rng)
        region = digit_region(gray)
        if region is not None:
            images.append(prepared_crop(region[0]))
    return images, np.ones(len(images), np.float32)


def drawn_image(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a drawing pad sends: one to five digits drawn with one round pen, dark on white
    (grey in [0, 1]), with room around them: MNIST digits made solid and redrawn at the pen's
    width, or, for a third of them, one straight stroke (a 1 as a mouse draws it)."""
    size = int(rng.integers(40, 220))  # the digits' height, pixels
    pen = max(2, round(rng.uniform(0.04, 0.14) * size))
    strokes = []
    for _ in range(int(rng.integers(1, 6))):
        if rng.random() < 1 / 3:
            stroke = np.zeros((size, size // 3 + pen), np.uint8)
            lean = rng.uniform(-0.15, 0.15) * size
            top, bottom = stroke.shape[1] / 2 + lean / 2, stroke.shape[1] / 2 - lean / 2
            cv2.line(stroke, (round(top), pen), (round(bottom), size - pen), 1, pen)
        else:
            solid = cv2.resize(digits[rng.integers(len(digits))], (size, size)) > 127
            core = cv2.erode(solid.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2)
            stroke = cv2.dilate(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (pen, pen)))
        strokes.append(stroke)
    gaps = rng.uniform(0.1, 0.6, len(strokes)) * size
    margins = rng.uniform(0.1, 1.5, 4) * size
    cols = round(sum(s.shape[1] for s in strokes) + gaps.sum() + margins[0] + margins[1])
    canvas = np.zeros((round(size + margins[2] + margins[3]), cols), np.uint8)
    x = margins[0]
    for stroke, gap in zip(strokes, gaps, strict=True):
        top, left = round(margins[2]), round(x)
        canvas[top : top + size, left : left + stroke.shape[1]] |= stroke
        x += stroke.shape[1] + gap
    return 1 - canvas.astype(np.float32)


def digit_region(gray: np.ndarray) -> tuple[np.ndarray, Box] | None:
    """The region of the ink the single-digit reader takes for digits (``region_crop`` of
    their boxes' union) and that union; None where it finds none."""
    boxes = [crop.box for crop in find_digits(gray)]
    if not boxes:
        return None
    box = box_around(boxes)
    region = region_crop(gray, box)
    return (region, box) if min(region.shape) >= 2 else None


def labelled_crops(page: PageSample) -> list[tuple[np.ndarray, bool]]:
    """The line finder's crops of a page and whether each holds digits; where none does, the
    region of the ink the single-digit reader takes for digits too. Ambiguous ones left out."""
    crops = [(found.crop, holds_digits(found.box, page.lines)) for found in find_lines(page.image)]
    region = None if any(label for _, label in crops) else digit_region(array_to_gray(page.image))
    if region is not None:
        crops.append((region[0], holds_digits(region[1], page.lines)))
    return [(crop, label) for crop, label in crops if label is not None]
