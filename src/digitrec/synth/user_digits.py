"""MNIST digits rendered the way people's own images look: dark ink on white paper, enlarged,
off-centre, rotated, thicker or thinner, under uneven light, with noise and JPEG artefacts.

The export uses it to choose the rejection threshold on user-style renders of *validation*
digits (``digitrec.read.calibration``), training (``TrainConfig.user_style``) mixes renders of training
digits into its inputs, and the tests use it on test digits to check how well the default model
reads user-style digits and strings.
Every function is deterministic given its ``rng`` (``numpy.random.default_rng(seed)``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from digitrec.read.imaging import find_digits, load_image


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
    """One MNIST digit (uint8 28×28) as a user's 8-bit grey image of it."""
    return user_digit_render(digit28, rng, style)[0]


def user_digit_render(
    digit28: np.ndarray, rng: np.random.Generator, style: Style = Style()
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """``user_digit_image`` with the digit's ink box (x0, y0, x1, y1; exclusive ends)."""
    ink = render_ink(digit28, rng.uniform(*style.scale), rng, style)
    height, width = ink.shape
    canvas = np.zeros(
        (round(height * rng.uniform(*style.canvas)), round(width * rng.uniform(*style.canvas)))
    )
    top = rng.integers(0, canvas.shape[0] - height + 1)
    left = rng.integers(0, canvas.shape[1] - width + 1)
    canvas[top : top + height, left : left + width] = ink
    return photograph(canvas, rng, style), ink_box(ink, left, top)


def digit_string_image(
    digits28: list[np.ndarray], rng: np.random.Generator, style: Style = Style()
) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """Digits written in a row: varied gaps, heights ±20 %, a slight baseline slant, not
    touching. Returns the image and each digit's ink box (x0, y0, x1, y1; exclusive ends)."""
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
        boxes.append(ink_box(ink, left, top))
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
        disk = disk_kernel(abs(radius))
        ink = (cv2.dilate if radius > 0 else cv2.erode)(ink, disk)
    angle = rng.uniform(-style.max_rotation, style.max_rotation)
    ink = np.asarray(
        Image.fromarray(np.clip(ink, 0, 1).astype(np.float32)).rotate(
            angle, Image.Resampling.BICUBIC, expand=True
        )
    )
    ink = np.clip(ink, 0, 1)
    x0, y0, x1, y1 = ink_box(ink, 0, 0)
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
    """The image (grey or RGB) after a JPEG round trip at ``quality``."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert(image.mode)


def ink_box(ink: np.ndarray, left: int, top: int) -> tuple[int, int, int, int]:
    """The box (x1, y1 exclusive) of the pixels above 10 % ink, offset by (left, top)."""
    rows, cols = np.nonzero(ink > 0.1)
    return (
        left + int(cols.min()),
        top + int(rows.min()),
        left + int(cols.max()) + 1,
        top + int(rows.max()) + 1,
    )


def disk_kernel(radius: float) -> np.ndarray:
    """A disk-shaped structuring element of the given radius."""
    r = int(np.ceil(radius))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return (x**2 + y**2 <= radius**2).astype(np.uint8)


def user_style_inputs(
    images: np.ndarray, seed: int = 0, style: Style = Style(), progress: bool = False
) -> np.ndarray:
    """Model inputs (N, 28, 28) float32 for uint8 digits (N, 28, 28) as the recognizer sees them
    in users' images: each rendered with ``user_digit_image``, then found and normalized by
    ``digitrec.read.imaging.find_digits`` (``single``, so every digit gives exactly one input)."""
    rng = np.random.default_rng(seed)
    digits = tqdm(images, desc="rendering users' images", unit="digit", disable=not progress)
    crops = [find_digits(load_image(user_digit_image(d, rng, style)), single=True) for d in digits]
    return np.stack([c[0].image if c else np.zeros((28, 28), np.float32) for c in crops])
