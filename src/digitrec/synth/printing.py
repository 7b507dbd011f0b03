"""Printed matter on the paper: form fields around a number (comb boxes, a box, an underline,
a table row), ruled or squared paper, text set in fonts, and distractors (specks, stamps,
scribbles). Everything is drawn as ink (float32, 0..1) on a layer the size of the page.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitrec.errors import DigitrecError
from digitrec.synth.style import Print
from digitrec.synth.user_digits import ink_box
from digitrec.synth.writing import Written

FIELDS = ("none", "comb", "box", "underline", "ruled", "squared", "table")
FONT_FOLDER = ("fonts", "ttf")  # where matplotlib's data holds the TrueType fonts it ships
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
AA = 16  # lines are drawn with this many sub-pixel steps (cv2's shift), anti-aliased


def rule_width(style: Print, height: float, rng: np.random.Generator) -> int:
    """A rule's width in pixels for writing ``height`` pixels high (the style's are at 40 px)."""
    width = rng.integers(style.rule_width[0], style.rule_width[1] + 1)
    return max(1, round(width * height / 40))


def line(layer: np.ndarray, start: tuple[float, float], end: tuple[float, float], width: int):
    """A straight anti-aliased line of ``width`` pixels from ``start`` to ``end`` (x, y)."""
    canvas = np.zeros(layer.shape, np.uint8)
    a = (round(start[0] * AA), round(start[1] * AA))
    b = (round(end[0] * AA), round(end[1] * AA))
    cv2.line(canvas, a, b, 255, width, cv2.LINE_AA, shift=4)
    np.maximum(layer, canvas / np.float32(255), out=layer)


def rectangle(layer: np.ndarray, box: tuple[float, float, float, float], width: int) -> None:
    """The outline of a box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    for start, end in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1))):
        line(layer, start, end, width)
    line(layer, (x0, y1), (x0, y0), width)


def draw_field(
    kind: str,
    layer: np.ndarray,
    written: Written,
    left: int,
    top: int,
    width: int,
    rng: np.random.Generator,
    pitch: float | None = None,
) -> None:
    """The form field of ``kind`` around a number written at (left, top) on the layer; "ruled"
    and "squared" paper fill the whole layer. "comb" needs the ``pitch`` it was written with."""
    h = written.height
    boxes = [(x0 + left, y0 + top, x1 + left, y1 + top) for x0, y0, x1, y1 in written.boxes]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    pad = rng.uniform(0.1, 0.4, 4) * h
    if kind == "comb":
        _comb(layer, boxes, pitch or 1.2 * h, y0 - pad[1] + 0.1 * h, y1 + pad[3] - 0.1 * h, width)
    elif kind == "box":
        rectangle(layer, (x0 - pad[0], y0 - pad[1], x1 + pad[2], y1 + pad[3]), width)
    elif kind == "underline":
        y = y1 + rng.uniform(0.02, 0.25) * h
        line(layer, (x0 - pad[0], y), (x1 + pad[2], y), width)
    elif kind == "ruled":
        rules(layer, y1 + rng.uniform(0.0, 0.15) * h, rng.uniform(1.2, 1.9) * h, width, False)
    elif kind == "squared":
        rules(layer, y1 + rng.uniform(0.0, 0.15) * h, rng.uniform(0.45, 0.8) * h, width, True)
    elif kind == "table":
        for y in (y0 - pad[1], y1 + pad[3]):
            line(layer, (0, y), (layer.shape[1], y), width)
        for x in (x0 - pad[0], x1 + pad[2]):
            line(layer, (x, 0), (x, layer.shape[0]), width)
    elif kind != "none":
        raise ValueError(f"unknown field {kind!r}")


def _comb(
    layer: np.ndarray, boxes: list, pitch: float, top: float, bottom: float, width: int
) -> None:
    """A row of cells ``pitch`` wide, one per digit, placed to fit the digits' centres."""
    centres = [(b[0] + b[2]) / 2 for b in boxes]
    start = float(np.mean([c - (i + 0.5) * pitch for i, c in enumerate(centres)]))
    for i in range(len(boxes) + 1):
        line(layer, (start + i * pitch, top), (start + i * pitch, bottom), width)
    for y in (top, bottom):
        line(layer, (start, y), (start + len(boxes) * pitch, y), width)


def rules(layer: np.ndarray, through: float, spacing: float, width: int, grid: bool) -> None:
    """Horizontal lines ``spacing`` apart, one at y = ``through``, across the layer; and
    vertical ones as well if ``grid``."""
    rows, cols = layer.shape
    for y in np.arange(through % spacing, rows, spacing):
        line(layer, (0, y), (cols, y), width)
    if grid:
        for x in np.arange(through % spacing, cols, spacing):
            line(layer, (x, 0), (x, rows), width)


@functools.cache
def font_files(patterns: tuple[str, ...]) -> tuple[Path, ...]:
    """The fonts shipped with matplotlib whose file names match one of ``patterns`` (globs), so
    that generated pages look the same on every machine, without fonts of its system."""
    folder = Path(matplotlib_data(), *FONT_FOLDER)
    found = sorted({path for pattern in patterns for path in folder.glob(pattern)})
    if not found:
        raise DigitrecError(
            f"no font file matching {' or '.join(patterns)} in {folder}: reinstall matplotlib "
            "(pip install --force-reinstall matplotlib)"
        )
    return tuple(found)


def matplotlib_data() -> str:
    """matplotlib's data folder; a clear error naming the extra that installs matplotlib."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise DigitrecError(
            "generated pages set their printed text in the fonts matplotlib ships, and "
            "matplotlib is not installed: pip install 'digitrec[train]'"
        ) from None
    return matplotlib.get_data_path()


def set_text(text: str, height: float, style: Print, rng: np.random.Generator) -> np.ndarray:
    """``text`` set in one of the style's fonts, capitals about ``height`` pixels high; its ink
    (float32, white on black) cropped to the ink."""
    fonts = font_files(style.fonts)
    font = ImageFont.truetype(str(fonts[rng.integers(len(fonts))]), max(4, round(height * 1.4)))
    x0, y0, x1, y1 = font.getbbox(text)
    image = Image.new("L", (x1 - x0 + 4, y1 - y0 + 4), 0)
    ImageDraw.Draw(image).text((2 - x0, 2 - y0), text, fill=255, font=font)
    ink = np.asarray(image, np.float32) / 255
    bx0, by0, bx1, by1 = ink_box(ink, 0, 0)
    return ink[by0:by1, bx0:bx1]


def words(style: Print, rng: np.random.Generator) -> str:
    """Printed text without a digit: one to three of the style's words, or random letters."""
    if rng.random() < 0.3:
        return "".join(rng.choice(list(LETTERS), rng.integers(1, 5)))
    return " ".join(rng.choice(style.words, rng.integers(1, 4)))


def specks(layer: np.ndarray, rng: np.random.Generator, size: float) -> None:
    """Dust and dots: 5 to 60 small blobs up to ``size`` pixels across, anywhere."""
    rows, cols = layer.shape
    for _ in range(rng.integers(5, 61)):
        centre = (int(rng.integers(cols)), int(rng.integers(rows)))
        axes = tuple(int(a) for a in rng.uniform(0.5, size / 2, 2).round())
        cv2.ellipse(layer, centre, axes, rng.uniform(0, 180), 0, 360, 1.0, -1)


def stamp(height: float, style: Print, rng: np.random.Generator) -> np.ndarray:
    """A rubber stamp: a word in a ring or a frame, rotated; its ink cropped to it."""
    text = set_text(str(rng.choice(style.words)).upper(), height, style, rng)
    pad = round(0.5 * height)
    ink = np.zeros((text.shape[0] + 2 * pad, text.shape[1] + 2 * pad), np.float32)
    ink[pad : pad + text.shape[0], pad : pad + text.shape[1]] = text
    width = max(1, round(height / 10))
    if rng.random() < 0.5:
        rectangle(ink, (width, width, ink.shape[1] - width - 1, ink.shape[0] - width - 1), width)
    else:
        rows, cols = ink.shape
        axes = (cols // 2 - width, rows // 2 - width)
        cv2.ellipse(ink, (cols // 2, rows // 2), axes, 0, 0, 360, 1.0, width, cv2.LINE_AA)
    image = Image.fromarray(ink).rotate(rng.uniform(-30, 30), Image.Resampling.BILINEAR, True)
    ink = np.clip(np.asarray(image), 0, 1) * rng.uniform(0.5, 1.0)
    return ink


def scribble(size: tuple[int, int], width: int, rng: np.random.Generator) -> np.ndarray:
    """A pen's scribble: a smooth random curve of ``width`` pixels within ``size`` (h, w)."""
    rows, cols = size
    knots = rng.uniform((0, 0), (cols, rows), (rng.integers(4, 9), 2))
    t = np.linspace(0, 1, len(knots))
    fine = np.linspace(0, 1, 40 * len(knots))
    curve = np.stack([np.interp(fine, t, knots[:, i]) for i in (0, 1)], axis=1)
    smooth = cv2.GaussianBlur(curve.reshape(-1, 1, 2), (1, 0), 6).reshape(-1, 2)
    ink = np.zeros(size, np.uint8)
    points = np.round(smooth * AA).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(ink, [points], False, 255, width, cv2.LINE_AA, shift=4)
    return ink / np.float32(255)
