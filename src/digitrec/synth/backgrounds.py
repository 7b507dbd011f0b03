"""Security backgrounds of cheques: fine guilloche lines and tinted patterns, as ink (float32,
0..1) the size of a line. The training style draws "waves" (two families of wavy lines) and
"hatch" (straight hatching over a tinted cloud); the test style "rosette" (rings modulated
around centres beyond the line) and "mesh" (two crossing families of fine lines)."""

from __future__ import annotations

import cv2
import numpy as np

from digitrec.errors import DigitrecError

PATTERNS = ("waves", "hatch", "rosette", "mesh")


def security_pattern(
    kind: str, shape: tuple[int, int], period: float, rng: np.random.Generator
) -> np.ndarray:
    """The background ``kind`` (one of ``PATTERNS``) for a line of ``shape`` (rows, cols), its
    fine lines ``period`` pixels apart, at a strength of 0.4 to 0.8."""
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    if kind == "waves":
        ink = np.maximum(_waves(x, y, period, rng), _waves(x, y, period, rng))
    elif kind == "hatch":
        angle = rng.uniform(0.5, 1.1) * rng.choice((-1, 1))
        ink = np.maximum(_lines(np.cos(angle) * y + np.sin(angle) * x, period), _cloud(shape, rng))
    elif kind == "rosette":
        ink = np.maximum(_rings(x, y, period, rng), _rings(x, y, period, rng))
    elif kind == "mesh":
        angle = rng.uniform(0.3, 0.7)
        first = _lines(np.cos(angle) * y + np.sin(angle) * x, period)
        ink = np.maximum(first, _lines(np.cos(angle) * y - np.sin(angle) * x, period))
    else:
        raise DigitrecError(f"unknown background {kind!r}: expected one of {', '.join(PATTERNS)}")
    return ink * np.float32(rng.uniform(0.4, 0.8))


def _lines(distance: np.ndarray, period: float) -> np.ndarray:
    """Anti-aliased lines about a pixel wide where ``distance`` (pixels) is a multiple of
    ``period``."""
    phase = distance / period
    off = np.abs(phase - np.round(phase)) * period
    return np.clip(1.0 - off / 0.9, 0, 1).astype(np.float32)


def _waves(x: np.ndarray, y: np.ndarray, period: float, rng: np.random.Generator) -> np.ndarray:
    """A family of parallel wavy lines, tilted a little."""
    wavelength = rng.uniform(15, 60) * period
    amplitude = rng.uniform(0.5, 2.0) * period
    wave = amplitude * np.sin(2 * np.pi * x / wavelength + rng.uniform(0, 2 * np.pi))
    return _lines(y + rng.uniform(-0.3, 0.3) * x + wave, period)


def _rings(x: np.ndarray, y: np.ndarray, period: float, rng: np.random.Generator) -> np.ndarray:
    """Rings around a centre beyond the line, their radius modulated with the angle."""
    rows, cols = x.shape
    centre = rng.uniform((-0.5 * cols, -2.0 * rows), (1.5 * cols, 3.0 * rows))
    dx, dy = x - centre[0], y - centre[1]
    radius = np.sqrt(dx * dx + dy * dy)
    lobes = int(rng.integers(6, 20))
    modulation = rng.uniform(1.0, 3.0) * period * np.sin(lobes * np.arctan2(dy, dx))
    return _lines(radius + modulation, period)


def _cloud(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth tint, stronger in places: printed colour under the lines."""
    grid = rng.uniform(0, 1, (3, 6)).astype(np.float32)
    cloud = cv2.resize(grid, shape[::-1], interpolation=cv2.INTER_CUBIC)
    return np.clip(cloud, 0, 1) * np.float32(rng.uniform(0.2, 0.5))
