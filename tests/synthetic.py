"""Images made from 28×28 digits the way people's own images look, for the tests of issue 4.

Every function is deterministic given its ``rng`` (``numpy.random.default_rng(seed)``), so a
recognition rate measured on them is reproducible. Import with ``from synthetic import ...``
(pytest puts ``tests/`` on the path).

- ``Style``: the ranges each variation is drawn from; ``Style.clean()`` varies only size and
  position (no rotation, stroke change, lighting, noise or JPEG).
- ``user_digit_image(digit28, rng, style=Style()) -> PIL.Image`` (mode "L"): one digit, dark ink
  on white, 2–6× larger, off-centre, rotated, thicker or thinner, under a brightness gradient,
  with noise; JPEG-compressed (and decoded again, so the pixels carry the artefacts) with
  probability ``style.jpeg_probability``.
- ``digit_string_image(digits28, rng, style=Style()) -> (PIL.Image, boxes)``: the digits in a
  row, varied gaps, heights ±20 %, a slight baseline slant, not touching; ``boxes`` are each
  digit's ink box (x0, y0, x1, y1; x1, y1 exclusive) in the image's pixels, left to right.
- ``blank_page``, ``noise_page``, ``scribble_page``: pages with no digit on them.
- ``font_digit(d) -> (28, 28) uint8``: a typeset digit placed like MNIST, for tests that do not
  need the real MNIST.
- ``photograph(ink, rng, style) -> PIL.Image``: paper, lighting, noise and JPEG for an ink map.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage


@dataclass(frozen=True)
class Style:
    """The ranges the variations of a rendered image are drawn from (uniformly)."""

    scale: tuple[float, float] = (2.0, 6.0)  # digit size over its 28 px
    canvas: tuple[float, float] = (1.3, 2.5)  # canvas side over the digit's size
    max_rotation: float = 10.0  # degrees either way
    stroke: tuple[float, float] = (-0.3, 0.6)  # stroke radius change, in MNIST pixels
    ink: tuple[float, float] = (0.0, 0.3)  # grey level of the ink
    gradient: tuple[float, float] = (0.0, 0.35)  # brightness loss across the page
    noise: tuple[float, float] = (0.0, 0.05)  # standard deviation of Gaussian noise
    jpeg_probability: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 95)

    @classmethod
    def clean(cls) -> Style:
        """Only size and position vary: the MNIST digit, enlarged, dark on white."""
        return cls(
            max_rotation=0.0,
            stroke=(0.0, 0.0),
            ink=(0.0, 0.0),
            gradient=(0.0, 0.0),
            noise=(0.0, 0.0),
            jpeg_probability=0.0,
        )


def user_digit_image(
    digit28: np.ndarray, rng: np.random.Generator, style: Style = Style()
) -> Image.Image:
    """One MNIST digit as a user's image of it (see the module docstring)."""
    ink = render_ink(digit28, rng.uniform(*style.scale), rng, style)
    height, width = ink.shape
    canvas = np.zeros(
        (round(height * rng.uniform(*style.canvas)), round(width * rng.uniform(*style.canvas)))
    )
    top = rng.integers(0, canvas.shape[0] - height + 1)
    left = rng.integers(0, canvas.shape[1] - width + 1)
    canvas[top : top + height, left : left + width] = ink
    return photograph(canvas, rng, style)


def digit_string_image(
    digits28: list[np.ndarray], rng: np.random.Generator, style: Style = Style()
) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """Digits written in a row (see the module docstring); returns the image and ink boxes."""
    base = rng.uniform(*style.scale)
    inks = [render_ink(d, base * rng.uniform(0.8, 1.2), rng, style) for d in digits28]
    height = max(ink.shape[0] for ink in inks)
    gaps = [rng.uniform(0.15, 0.8) * 20 * base for _ in inks]
    margin = round(0.5 * height)
    slant = np.tan(np.radians(rng.uniform(-3, 3)))
    width = margin * 2 + sum(ink.shape[1] for ink in inks) + round(sum(gaps[1:]))
    rise = abs(slant) * width
    canvas = np.zeros((round(2 * margin + 1.2 * height + rise), width))
    boxes, x = [], float(margin)
    for ink, gap in zip(inks, [0.0, *gaps[1:]], strict=True):
        x += gap
        left = round(x)
        baseline = margin + 1.2 * height + (rise if slant > 0 else 0) - slant * left
        top = round(baseline - ink.shape[0] - rng.uniform(0, 0.1 * height))
        region = canvas[top : top + ink.shape[0], left : left + ink.shape[1]]
        np.maximum(region, ink, out=region)
        boxes.append(_ink_box(ink, left, top))
        x += ink.shape[1]
    return photograph(canvas, rng, style), boxes


def render_ink(
    digit28: np.ndarray, scale: float, rng: np.random.Generator, style: Style
) -> np.ndarray:
    """The digit enlarged ``scale`` times, thicker or thinner, rotated; cropped to its ink,
    as float ink intensity (white on black)."""
    digit = Image.fromarray(np.asarray(digit28, dtype=np.float32) / 255)
    size = round(28 * scale)
    ink = np.asarray(digit.resize((size, size), Image.Resampling.BICUBIC))
    radius = rng.uniform(*style.stroke) * scale
    if abs(radius) >= 0.5:
        disk = _disk(abs(radius))
        ink = (ndimage.grey_dilation if radius > 0 else ndimage.grey_erosion)(ink, footprint=disk)
    angle = rng.uniform(-style.max_rotation, style.max_rotation)
    ink = np.asarray(
        Image.fromarray(np.clip(ink, 0, 1).astype(np.float32)).rotate(
            angle, Image.Resampling.BICUBIC, expand=True
        )
    )
    ink = np.clip(ink, 0, 1)
    x0, y0, x1, y1 = _ink_box(ink, 0, 0)
    return ink[y0:y1, x0:x1]


def photograph(ink: np.ndarray, rng: np.random.Generator, style: Style) -> Image.Image:
    """Ink (white on black) as dark ink on white paper under a brightness gradient, with noise,
    possibly JPEG-compressed; an 8-bit grey image."""
    paper = 1 - ink * (1 - rng.uniform(*style.ink))
    angle = rng.uniform(0, 2 * np.pi)
    rows, cols = np.mgrid[0 : ink.shape[0], 0 : ink.shape[1]]
    ramp = np.cos(angle) * cols + np.sin(angle) * rows
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1)
    paper = paper * (1 - rng.uniform(*style.gradient) * ramp)
    paper = paper + rng.normal(0, rng.uniform(*style.noise), paper.shape)
    image = Image.fromarray(np.round(np.clip(paper, 0, 1) * 255).astype(np.uint8))
    if rng.random() < style.jpeg_probability:
        image = jpeg(image, int(rng.integers(style.jpeg_quality[0], style.jpeg_quality[1] + 1)))
    return image


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    """The image after a JPEG round trip at ``quality``."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("L")


def blank_page(rng: np.random.Generator, size: tuple[int, int] = (600, 800)) -> Image.Image:
    """Empty paper, photographed: gradient, noise, maybe JPEG (size is height, width)."""
    return photograph(np.zeros(size), rng, Style())


def noise_page(rng: np.random.Generator, size: tuple[int, int] = (400, 400)) -> Image.Image:
    """Pure noise: uniform random grey levels, sometimes smoothed into blobs."""
    noise = rng.random(size)
    if rng.random() < 0.5:
        noise = ndimage.gaussian_filter(noise, rng.uniform(1, 4))
        noise = (noise - noise.min()) / np.ptp(noise)
    return Image.fromarray(np.round(noise * 255).astype(np.uint8))


def scribble_page(rng: np.random.Generator, size: tuple[int, int] = (500, 700)) -> Image.Image:
    """Large random scribbles: thick polylines wandering over the page."""
    ink = Image.new("F", size[::-1], 0.0)
    draw = ImageDraw.Draw(ink)
    for _ in range(rng.integers(1, 4)):
        points = rng.uniform((0, 0), size[::-1], (rng.integers(5, 15), 2))
        draw.line([tuple(p) for p in points], fill=1.0, width=int(rng.integers(4, 15)))
    return photograph(np.asarray(ink), rng, Style())


def font_digit(digit: int, size: int = 22) -> np.ndarray:
    """A typeset digit as a uint8 28×28 image placed like MNIST (white on black, centred)."""
    image = Image.new("L", (56, 56), 0)
    ImageDraw.Draw(image).text(
        (28, 28), str(digit), fill=255, font=ImageFont.load_default(size), anchor="mm"
    )
    array = np.asarray(image)
    x0, y0, x1, y1 = _ink_box(array / 255, 0, 0)
    crop = Image.fromarray(array[y0:y1, x0:x1])
    scale = 20 / max(crop.size)
    crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))))
    out = Image.new("L", (28, 28), 0)
    out.paste(crop, ((28 - crop.width) // 2, (28 - crop.height) // 2))
    return np.asarray(out)


def _ink_box(ink: np.ndarray, left: int, top: int) -> tuple[int, int, int, int]:
    """The box (x1, y1 exclusive) of the pixels above 10 % ink, offset by (left, top)."""
    rows, cols = np.nonzero(ink > 0.1)
    return (
        left + int(cols.min()),
        top + int(rows.min()),
        left + int(cols.max()) + 1,
        top + int(rows.max()) + 1,
    )


def _disk(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return x**2 + y**2 <= radius**2
