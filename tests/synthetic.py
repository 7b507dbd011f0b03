"""Images made from 28×28 digits the way people's own images look, to test how well they are read.

The rendering of user-style digits and strings lives in the package (``digitrec.synth.user_digits``,
also used by the export to choose the rejection threshold on validation digits); this module
re-exports it and adds the pages and typeset digits only the tests need. Import with
``from synthetic import ...`` (pytest puts ``tests/`` on the path).

- ``Style``, ``user_digit_image``, ``digit_string_image``, ``photograph``: see
  ``digitrec.synth.user_digits``.
- ``blank_page``, ``noise_page``, ``scribble_page``: pages with no digit on them.
- ``font_digit(d) -> (28, 28) uint8``: a typeset digit placed like MNIST, for tests that do not
  need the real MNIST.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from digitrec.synth.user_digits import (
    Style,
    digit_string_image,
    ink_box,
    photograph,
    user_digit_image,
)

__all__ = [
    "Style",
    "blank_page",
    "digit_string_image",
    "font_digit",
    "noise_page",
    "photograph",
    "scribble_page",
    "user_digit_image",
]


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
    x0, y0, x1, y1 = ink_box(array / 255, 0, 0)
    crop = Image.fromarray(array[y0:y1, x0:x1])
    scale = 20 / max(crop.size)
    crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))))
    out = Image.new("L", (28, 28), 0)
    out.paste(crop, ((28 - crop.width) // 2, (28 - crop.height) // 2))
    return np.asarray(out)
