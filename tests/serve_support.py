"""Helpers of the web service's tests (``from serve_support import ...``): images as a user
sends them (drawn numbers, generated photos and pages), the packaged model loaded once, and
clients that send an allowed Host header."""

from __future__ import annotations

import functools
import io

import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from synthetic import Style, digit_string_image, font_digit

from digitrec.read.recognizer import Recognizer
from digitrec.synth.pages import page_sample

RECOGNIZE = "/api/v1/recognize"
PNG = {"content-type": "image/png"}


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def drawn_ones(count: int = 1, size: int = 160) -> bytes:
    """Dark strokes on white, as the drawing page sends them: ``count`` upright ones written as
    one number (``size`` / 2 apart, closer than they are high, so with no space between). The
    pad's images are taller than a crop of one number (``policy.CROP_HEIGHT``), which the line
    models read, and they read ruler-straight bars as one 1 or none."""
    pitch = size // 2
    image = Image.new("L", (size + (count - 1) * pitch, size), 255)
    draw = ImageDraw.Draw(image)
    for i in range(count):
        x = i * pitch + size // 2
        draw.line([(x, size // 6), (x, size - size // 6)], fill=0, width=size // 10)
    return png_bytes(image)


def number_png(digits: str, seed: int = 0) -> bytes:
    """Typeset digits written in a row, dark on white: an image of the number ``digits``."""
    rng = np.random.default_rng(seed)
    image, _ = digit_string_image([font_digit(int(d)) for d in digits], rng, Style.clean())
    return png_bytes(image)


# Generated images the packaged models read as a photo of a number (one line, 3 digits) and as
# a page of two lines of numbers: (layout, seed) for ``page_png``.
PHOTO = ("photo", 21)
TWO_LINES = ("multiline", 39)


@functools.cache
def page_png(layout: str, seed: int) -> bytes:
    """A page of the generator's ``layout`` written in typeset digits (so no MNIST is needed),
    with its printed words, paper and camera, as a PNG file's bytes."""
    digits = np.stack([font_digit(d) for d in range(10)])
    sample = page_sample(layout, digits, np.arange(10, dtype=np.uint8), seed, "validation")
    return png_bytes(sample.image)


@functools.cache
def default_recognizer() -> Recognizer:
    """The packaged model, loaded once for all the service's tests."""
    return Recognizer.load("default", threads=1)


def local_client(app: FastAPI) -> TestClient:
    """A test client whose requests name ``localhost``, a host the app answers by default."""
    return TestClient(app, base_url="http://localhost")
