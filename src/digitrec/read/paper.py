"""Where the ink of a page image is, where the page itself is, and how it is skewed.

- ``find_ink``: pixels darker than the paper around them (a black-hat transform: a grey closing
  wider than any stroke leaves the paper, its shadows and the desk), by a threshold above the
  noise, with hysteresis; and, on a photo, the page's edge (a long sharp change of the paper's
  brightness) and the desk beyond it, whose grain is no writing. Why this is not
  ``digitrec.read.ink.separate_ink``: see that module.
- ``skew``: the angle at which the rows of ink (and the page's edge) are sharpest.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitrec.read.ink import hysteresis, shrink


@dataclass(frozen=True)
class PaperSettings:
    """What finding the ink, the desk and the skew rely on."""

    ink_window: int = 15  # ink is darker than the paper within this window, pixels...
    ink_window_fraction: float = 0.08  # ... or within this fraction of the longer side
    contrast: float = 0.08  # ink is at least this much darker than its paper (0..1 scale)...
    noise_margin: float = 6.0  # ... and this many noise deviations
    cliff: float = 0.03  # a background changing this much per pixel...
    cliff_length: float = 0.15  # ... over this fraction of the image's side is the page's edge
    desk_edge: float = 0.5  # a dark surround whose boundary is this much page edge is desk
    max_skew: float = 20.0  # degrees either way
    skew_side: int = 400  # the skew is measured on a copy at most this long, pixels...
    skew_evidence: float = 1.2  # ... and taken if its rows are this much sharper than level


def find_ink(gray: np.ndarray, settings: PaperSettings) -> tuple[np.ndarray, np.ndarray]:
    """The dark ink (bool): darker than the paper around it by a threshold well above the
    noise, faint pixels joined to clear ones included. And, on a photo, the page's edge and
    the desk beyond it (bool), where ink is the desk's grain, not writing."""
    smooth = cv2.GaussianBlur(gray, (0, 0), 1.0)
    paper = _paper(smooth, _window(gray.shape, settings))
    darker = paper - smooth  # on bare paper: the noise's rise to its local maximum
    level = float(np.median(darker))
    noise = 1.4826 * float(np.median(np.abs(darker - level)))
    rise = max(settings.contrast, settings.noise_margin * noise)
    strong = level + rise
    ink = hysteresis(darker, strong, level + rise / 2)
    cliffs = _cliffs(paper, settings.cliff, settings.cliff_length)
    beyond = cliffs | _desk(paper, cliffs, settings.desk_edge)
    if cliffs.any():  # a photographed page: what reaches the image's border is the desk's
        beyond[[0, -1], :] = beyond[:, [0, -1]] = True
    return ink, beyond


def _window(shape: tuple[int, int], settings: PaperSettings) -> int:
    """The side of the window the paper's brightness is taken over: wider than any stroke."""
    return max(settings.ink_window, round(max(shape) * settings.ink_window_fraction)) | 1


def _paper(smooth: np.ndarray, side: int) -> np.ndarray:
    """The paper's brightness without the ink: a grey closing over ``side`` pixels."""
    # Replicated edges keep a strip of desk along the border from being taken for a stroke.
    padded = cv2.copyMakeBorder(smooth, side, side, side, side, cv2.BORDER_REPLICATE)
    kernel = np.ones((side, side), np.uint8)  # square: fast (separable), wide enough
    return cv2.morphologyEx(padded, cv2.MORPH_CLOSE, kernel)[side:-side, side:-side]


def _desk(paper: np.ndarray, cliffs: np.ndarray, sharp: float) -> np.ndarray:
    """Around a photographed page, the desk (bool). Where the page's edge (``cliffs``) closes
    around a large part of the image, all outside it. Otherwise the dark side of the paper's
    brightness (split by Otsu's threshold) where it reaches the image's border, covers less
    than half of the image (the page is the larger) and is bounded mostly by a sharp edge
    (``sharp``: the fraction of its boundary on ``cliffs``); a shadow's boundary is soft."""
    count, parts = cv2.connectedComponents((~cliffs).astype(np.uint8), connectivity=4)
    sizes = np.bincount(parts.ravel(), minlength=count)
    closed = sizes * ~_at_border(parts, count)
    closed[0] = 0
    if closed.max() >= 0.2 * parts.size:
        return (parts != np.argmax(closed)) & ~cliffs
    levels = np.round(np.clip(paper, 0, 1) * 255).astype(np.uint8)
    _, dark = cv2.threshold(levels, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    count, parts = cv2.connectedComponents(dark, connectivity=4)
    edge = (dark - cv2.erode(dark, np.ones((3, 3), np.uint8))) > 0
    edge[[0, -1], :] = edge[:, [0, -1]] = False  # the image's border is no boundary
    on_cliff = np.bincount(parts[edge], weights=cliffs[edge], minlength=count)
    boundary = np.bincount(parts[edge], minlength=count)
    sizes = np.bincount(parts.ravel(), minlength=count)
    desk = _at_border(parts, count) & (sizes < parts.size / 2)
    desk &= on_cliff >= sharp * np.maximum(boundary, 1)
    desk[0] = False
    return desk[parts]


def _at_border(parts: np.ndarray, count: int) -> np.ndarray:
    """Which of ``count`` labelled parts reach the image's border (bool per label)."""
    border = np.zeros(count, bool)
    border[np.concatenate([parts[0], parts[-1], parts[:, 0], parts[:, -1]])] = True
    return border


def _cliffs(paper: np.ndarray, steepness: float, length: float) -> np.ndarray:
    """Where the paper's brightness drops sharply (more than ``steepness`` per pixel) along a
    stretch ``length`` of the image's side or longer: the edge of a photographed page against
    the desk. Shadows and uneven light change slowly; a blot of ink is short."""
    dx = cv2.Sobel(paper, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
    dy = cv2.Sobel(paper, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
    steep = (np.hypot(dx, dy) > steepness).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(steep, connectivity=8)
    sides = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    long = sides >= length * max(paper.shape)
    long[0] = False
    return cv2.dilate(long[labels].astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


def outline(mask: np.ndarray) -> np.ndarray:
    """The boundary of a mask inside the image (bool): a photographed page's edge, whose
    direction tells the page's skew better than a few short numbers."""
    inside = mask.astype(np.uint8)
    outline = (inside - cv2.erode(inside, np.ones((3, 3), np.uint8))) > 0
    outline[[0, -1], :] = outline[:, [0, -1]] = False
    return outline


SKEW_ELEMENTS = 1_000_000  # ink pixels times angles turned at once: bounds the memory of skew


def skew(ink: np.ndarray, settings: PaperSettings) -> float:
    """The angle (degrees, counter-clockwise) that makes the rows of ink horizontal: the one
    whose horizontal projection varies most, tried every half degree; 0 unless another is
    clearly better (a few short numbers say little about the page's skew)."""
    small = shrink(ink.astype(np.float32), max(ink.shape) / settings.skew_side)
    rows, cols = small.shape
    diagonal = int(np.ceil(np.hypot(rows, cols)))
    ys, xs = np.nonzero(small)
    weights = small[ys, xs]
    xs, ys = xs - cols / 2, ys - rows / 2
    angles = np.arange(-settings.max_skew, settings.max_skew + 0.25, 0.5)
    step = max(1, SKEW_ELEMENTS // max(len(weights), 1))  # angles turned at once
    scores = np.concatenate(
        [
            _row_variances(ys, xs, weights, np.radians(angles[i : i + step]), diagonal)
            for i in range(0, len(angles), step)
        ]
    )
    best = int(np.argmax(scores))
    level = scores[int(np.argmin(np.abs(angles)))]
    return float(angles[best]) if scores[best] > settings.skew_evidence * level else 0.0


def _row_variances(
    ys: np.ndarray, xs: np.ndarray, weights: np.ndarray, angles: np.ndarray, diagonal: int
) -> np.ndarray:
    """For each angle (radians), the variance of the rows' ink after turning the ink at
    (``ys``, ``xs``, centred) by it; each pixel's ink shared by the two rows it falls between.
    All angles in one pass: angle ``k``'s rows are counted at ``k * diagonal`` on."""
    turned = np.cos(angles)[:, None] * ys - np.sin(angles)[:, None] * xs + diagonal / 2
    row = np.floor(turned)
    share = turned - row
    row = np.clip(row.astype(int), 0, diagonal - 2) + diagonal * np.arange(len(angles))[:, None]
    size = len(angles) * diagonal
    profile = np.bincount(row.ravel(), (weights * (1 - share)).ravel(), minlength=size)
    profile += np.bincount(row.ravel() + 1, (weights * share).ravel(), minlength=size)
    return profile.reshape(len(angles), diagonal).var(axis=1)
