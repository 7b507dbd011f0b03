"""Helpers of the web service's tests (``from serve_support import ...``): images as a user
sends them, the packaged model loaded once, and clients that send an allowed Host header."""

from __future__ import annotations

import functools
import io

import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from digitrec.recognizer import Recognizer

RECOGNIZE = "/api/v1/recognize"
PNG = {"content-type": "image/png"}


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def drawn_ones(count: int = 1, size: int = 120) -> bytes:
    """Dark strokes on white, as the drawing page sends them: ``count`` upright ones in a row."""
    image = Image.new("L", (size * count, size), 255)
    draw = ImageDraw.Draw(image)
    for i in range(count):
        x = i * size + size // 2
        draw.line([(x, size // 6), (x, size - size // 6)], fill=0, width=size // 10)
    return png_bytes(image)


@functools.cache
def default_recognizer() -> Recognizer:
    """The packaged model, loaded once for all the service's tests."""
    return Recognizer.load("default", threads=1)


def local_client(app: FastAPI) -> TestClient:
    """A test client whose requests name ``localhost``, a host the app answers by default."""
    return TestClient(app, base_url="http://localhost")
