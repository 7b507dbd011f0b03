"""The ink of a grey image: polarity, uneven lighting flattened, a threshold that keeps faint
strokes of a digit and nothing on a blank page (step 2 of ``digitrec.read.imaging``'s pipeline).

Ink is found three ways, each for what reads it next:

- ``separate_ink``, for the single-digit classifier: either polarity, and the ink's grey
  intensity with its soft edges (MNIST's digits have them), on a whole image;
- ``digitrec.read.paper.find_ink``, for line finding: only where the ink is (a mask), on pages
  of dark ink whose paper changes brightness at the scale of a line (shadows, a photo's light)
  and whose desk must be told from writing; it shares ``hysteresis`` with ``separate_ink``;
- ``digitrec.read.line_reader.white_ink``, for the line model: a line crop made white on black
  as the model was trained on it (see ``line_ink_is_dark``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

POLARITY_SIDE = 64  # the local background that tells the polarity is taken at this size
RESIDUE_SIDE = 256  # ... and the ink's residue from it at this size
MIN_CONTRAST = 0.1  # ink fainter than this (on the 0..1 scale) above the background is no ink
WEAK_INK = 0.5  # pixels above this fraction of the Otsu threshold are ink if they touch ink
MIN_CONTRAST_TO_NOISE = 5.0  # ... and so is ink less than this many noise deviations above it
STATISTICS_SAMPLE = 4_096  # medians of background and ink are taken over this many pixels


@dataclass
class Ink:
    """The ink of an image: ``intensity`` (float32, white ink on black, 0 where there is none)
    and ``mask`` (bool, the pixels that are ink)."""

    intensity: np.ndarray
    mask: np.ndarray


def separate_ink(gray: np.ndarray) -> Ink:
    """Find the ink of a grey image whatever its polarity and lighting; no ink if it is blank."""
    smooth = cv2.GaussianBlur(gray, (0, 0), _blur_sigma(gray.shape))
    dark = ink_is_dark(smooth)
    signal, smooth_signal = (1 - gray, 1 - smooth) if dark else (gray, smooth)
    provisional = smooth_signal > _otsu(smooth_signal)
    background = _background(smooth_signal, _stroke_width(provisional))
    flat, smooth_flat = signal - background, smooth_signal - background
    strong = _otsu(smooth_flat)
    if not _is_distinct(smooth_flat, smooth_flat > strong):
        return Ink(np.zeros_like(gray), np.zeros(gray.shape, dtype=bool))
    mask = hysteresis(smooth_flat, strong, WEAK_INK * strong)
    level = np.percentile(flat[mask], 90)
    near = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    intensity = np.clip(flat / level, 0, 1) * near
    return Ink(intensity.astype(np.float32), mask)


def hysteresis(values: np.ndarray, strong: float, weak: float) -> np.ndarray:
    """Pixels above ``weak`` connected to some above ``strong``: faint thin strokes of a digit
    are kept, faint marks elsewhere are not."""
    count, labels = cv2.connectedComponents((values > weak).astype(np.uint8), connectivity=8)
    keep = np.zeros(count, dtype=bool)
    keep[labels[values > strong]] = True
    keep[0] = False  # the background (below ``weak``)
    return keep[labels]


def ink_is_dark(gray: np.ndarray) -> bool:
    """Whether the ink of a whole image is darker than its surroundings: the residue from a
    local median of the image (the background, as ink is the minority everywhere) has its long
    tail below. Judged on a copy at most RESIDUE_SIDE long: the sign of a skew needs no more.

    A line crop's polarity is ``line_ink_is_dark``'s instead, the rule the line model was
    trained with (``prepare_line`` makes its training lines too). The two disagree on 98 of
    1,241 line crops of validation pages (seeds 21 to 50 of every layout, and 600 training
    lines), mostly dark ink on paper darker than mid-grey, which the median rule turns white.
    This rule in its place, with the shipped line model unchanged, reads 7 more of 500
    validation pages of the digit layouts exactly (auto: photo 85 -> 89%, touching 83 -> 85%,
    gaps 85 -> 87%, comb 83%, multiline 78 -> 77%): a change for a line model trained with it.
    """
    gray = shrink(gray, max(gray.shape) / RESIDUE_SIDE)
    small = np.round(shrink(gray, max(gray.shape) / POLARITY_SIDE) * 255).astype(np.uint8)
    local = cv2.medianBlur(small, max(3, max(small.shape) // 3) | 1).astype(np.float32) / 255
    residue = gray - _stretch(local, gray.shape)
    return float(np.mean(residue * residue * residue, dtype=np.float64)) < 0


def line_ink_is_dark(crop: np.ndarray) -> bool:
    """Whether the ink of a line crop (in [0, 1]) is dark: its median, the paper's (ink is the
    minority of a line), is light. The line model's polarity rule (see ``ink_is_dark``)."""
    return bool(np.median(crop) > 0.5)


def _blur_sigma(shape: tuple[int, ...]) -> float:
    """A light blur against noise and JPEG artefacts, scaled with the image but kept small."""
    return float(np.clip(max(shape) / 1000, 0.5, 1.0))


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of values on the 0..1 scale."""
    levels = np.round(np.clip(values, 0, 1) * 255).astype(np.uint8)
    threshold, _ = cv2.threshold(levels, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return threshold / 255


def _stroke_width(mask: np.ndarray) -> float:
    """About the width of the strokes in a mask, from its distance transform."""
    if not mask.any():
        return 1.0
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    return 2 * float(np.percentile(distance[mask], 95))


def _background(signal: np.ndarray, stroke_width: float) -> np.ndarray:
    """The large-scale background of ``signal`` (ink bright): a morphological opening wider
    than the strokes, computed on a reduced copy since it only varies slowly."""
    height, width = signal.shape
    kernel = int(np.clip(4 * stroke_width, 5, max(height, width) / 2))
    small = shrink(signal, kernel / 15)
    side = max(3, round(kernel * max(small.shape) / max(height, width))) | 1  # thin: not 1 / 1
    # Replicating the edges keeps a gradient rising towards the border from being cut down.
    padded = cv2.copyMakeBorder(small, side, side, side, side, cv2.BORDER_REPLICATE)
    opened = cv2.morphologyEx(padded, cv2.MORPH_OPEN, np.ones((side, side), np.uint8))
    opened = cv2.GaussianBlur(opened, (0, 0), side / 4)[side:-side, side:-side]
    return _stretch(opened, signal.shape)


def shrink(image: np.ndarray, factor: float) -> np.ndarray:
    """The image reduced ``factor`` times by area averaging (as it is, if factor <= 1)."""
    if factor <= 1:
        return np.asarray(image, dtype=np.float32)
    height, width = image.shape
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_AREA)


def _stretch(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A smooth reduced image brought back to ``shape`` by bilinear interpolation."""
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _is_distinct(values: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the masked pixels stand out from the rest: by MIN_CONTRAST and well above noise.
    The medians are taken over at most about STATISTICS_SAMPLE evenly spread pixels."""
    if mask.all() or not mask.any():
        return False
    rest, ink = _sample(values[~mask]), _sample(values[mask])
    background = np.median(rest)
    noise = 1.4826 * np.median(np.abs(rest - background))
    contrast = np.median(ink) - background
    return contrast >= MIN_CONTRAST and contrast >= MIN_CONTRAST_TO_NOISE * noise


def _sample(values: np.ndarray) -> np.ndarray:
    """Every k-th value, k chosen to keep about STATISTICS_SAMPLE of them."""
    return values[:: max(1, len(values) // STATISTICS_SAMPLE)]


# --- normalization --------------------------------------------------------------------------------
