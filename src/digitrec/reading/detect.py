"""Finding the text lines of a page, classically: no model, no TensorFlow.

1. Ink: pixels darker than the paper around them (a black-hat transform: a grey closing wider
   than any stroke leaves the paper, its shadows and the desk), by a threshold above the noise,
   with hysteresis. On a copy at most ``work_side`` long. Pieces of ink along a sharp edge of
   that background are the desk showing around a photographed page, and are dropped.
2. Skew: the angle (within ``max_skew``) at which the rows of ink are sharpest (the variance
   of the horizontal projection); the ink is turned upright by it.
3. Printed rules are removed: ink in long thin horizontal or vertical runs (a morphological
   opening with a long line), first runs long against the page (ruled paper, tables), then
   runs long against the writing's height, measured on what is left (boxes, combs, underlines).
4. Pieces (connected components) that are specks or far taller than writing are dropped; the
   others are joined into lines: neighbours that overlap vertically and lie close across.
5. Lines are returned top to bottom, each with its box in the image and an upright crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from digitrec.imaging import array_to_gray

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class DetectSettings:
    """The proportions line finding relies on; lengths are in writing heights unless stated."""

    work_side: int = 1200  # the ink is found on a copy at most this long, pixels
    ink_window: int = 15  # ink is darker than the paper within this window, pixels...
    ink_window_fraction: float = 0.08  # ... or within this fraction of the longer side
    contrast: float = 0.08  # ink is at least this much darker than its paper (0..1 scale)...
    noise_margin: float = 6.0  # ... and this many noise deviations
    cliff: float = 0.03  # a background changing this much per pixel...
    cliff_length: float = 0.15  # ... over this fraction of the image's side is the page's edge
    max_skew: float = 15.0  # degrees either way
    skew_side: int = 400  # the skew is measured on a copy at most this long, pixels...
    skew_evidence: float = 1.2  # ... and taken if its rows are this much sharper than level
    page_rule: float = 0.25  # first pass: a rule is a run this fraction of the page side
    rule: float = 2.0  # second pass: a horizontal rule is a run this many heights long
    upright_rule: float = 2.5  # ... and a vertical rule one this many heights high
    box_side: float = 0.7  # a vertical run this high that touches a rule is a box's side
    speck: float = 0.25  # a piece lower and narrower than this is a speck
    tallest: float = 3.0  # a piece higher than this is no writing (a scribble, a frame)
    overlap: float = 0.4  # pieces overlapping vertically by this fraction of the lower one...
    gap: float = 1.5  # ... and this far apart horizontally are on one line
    shortest: float = 0.4  # a line lower than this is a dash, a dot or a rule's remnant
    margin: float = 0.15  # the crop around a line's box


@dataclass
class LineBox:
    """A text line found on a page: its box (x0, y0, x1, y1; exclusive ends) in the image's
    pixels, and the line cut out upright (the page's skew undone) with a margin: uint8 grey,
    dark ink on light paper."""

    box: Box
    crop: np.ndarray


def find_lines(image: np.ndarray, settings: DetectSettings = DetectSettings()) -> list[LineBox]:
    """The text lines of a page image (grey or colour array, see ``array_to_gray``), top to
    bottom. A page without ink has none."""
    gray = array_to_gray(image)
    scale = max(1.0, max(gray.shape) / settings.work_side)
    work = cv2.resize(gray, None, fx=1 / scale, fy=1 / scale, interpolation=cv2.INTER_AREA)
    ink = _ink(work, settings)
    if not ink.any():
        return []
    turn = _Turn(ink.shape, _skew(ink, settings))
    ink, height = _without_rules(turn.upright(ink), settings)
    boxes = _lines(_pieces(ink, height, settings), height, settings)
    margin = settings.margin * height
    return [
        LineBox(turn.box_back(box, scale, gray.shape), turn.crop(gray, box, margin, scale))
        for box in sorted(boxes, key=lambda b: (b[1], b[0]))
    ]


def _ink(gray: np.ndarray, settings: DetectSettings) -> np.ndarray:
    """The dark ink on the page (bool): darker than the paper around it by a threshold well
    above the noise, faint pixels joined to clear ones included; not along the page's edge."""
    side = max(settings.ink_window, round(max(gray.shape) * settings.ink_window_fraction)) | 1
    smooth = cv2.GaussianBlur(gray, (0, 0), 1.0)
    # Replicated edges keep a strip of desk along the border from being taken for a stroke.
    padded = cv2.copyMakeBorder(smooth, side, side, side, side, cv2.BORDER_REPLICATE)
    kernel = np.ones((side, side), np.uint8)  # square: fast (separable), wide enough
    paper = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, kernel)[side:-side, side:-side]
    darker = paper - smooth  # on bare paper: the noise's rise to its local maximum
    level = float(np.median(darker))
    noise = 1.4826 * float(np.median(np.abs(darker - level)))
    rise = max(settings.contrast, settings.noise_margin * noise)
    strong = level + rise
    pieces, count = ndimage.label(darker > level + rise / 2, np.ones((3, 3)))
    keep = np.zeros(count + 1, bool)
    keep[pieces[darker > strong]] = True
    keep[pieces[_cliffs(paper, settings.cliff, settings.cliff_length)]] = False
    keep[0] = False
    return keep[pieces]


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


def _skew(ink: np.ndarray, settings: DetectSettings) -> float:
    """The angle (degrees, counter-clockwise) that makes the rows of ink horizontal: the one
    whose horizontal projection varies most, tried every half degree; 0 unless another is
    clearly better (a few short numbers say little about the page's skew)."""
    factor = min(1.0, settings.skew_side / max(ink.shape))
    small = cv2.resize(
        ink.astype(np.float32), None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA
    )
    rows, cols = small.shape
    diagonal = int(np.ceil(np.hypot(rows, cols)))
    angles = np.arange(-settings.max_skew, settings.max_skew + 0.25, 0.5)
    scores = []
    for angle in angles:
        matrix = cv2.getRotationMatrix2D((cols / 2, rows / 2), float(angle), 1.0)
        matrix[:, 2] += ((diagonal - cols) / 2, (diagonal - rows) / 2)
        turned = cv2.warpAffine(small, matrix, (diagonal, diagonal), flags=cv2.INTER_LINEAR)
        scores.append(float(np.var(turned.sum(axis=1))))
    best = int(np.argmax(scores))
    level = scores[int(np.argmin(np.abs(angles)))]
    return float(angles[best]) if scores[best] > settings.skew_evidence * level else 0.0


class _Turn:
    """The rotation of the work image (``shape``) by ``angle`` degrees onto an upright canvas
    large enough to hold it, and back."""

    def __init__(self, shape: tuple[int, int], angle: float):
        rows, cols = shape
        cos, sin = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
        self.size = (int(np.ceil(cols * cos + rows * sin)), int(np.ceil(cols * sin + rows * cos)))
        self.matrix = cv2.getRotationMatrix2D((cols / 2, rows / 2), angle, 1.0)
        self.matrix[:, 2] += ((self.size[0] - cols) / 2, (self.size[1] - rows) / 2)
        self.inverse = cv2.invertAffineTransform(self.matrix)

    def upright(self, mask: np.ndarray) -> np.ndarray:
        """The mask turned upright (nearest pixel, nothing outside)."""
        turned = cv2.warpAffine(
            mask.astype(np.uint8), self.matrix, self.size, flags=cv2.INTER_NEAREST
        )
        return turned > 0

    def box_back(self, box: Box, scale: float, shape: tuple[int, ...]) -> Box:
        """An upright box as the box around it in the original image (``scale`` times the work
        image), within the image."""
        x0, y0, x1, y1 = box
        corners = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        back = (corners @ self.inverse[:, :2].T + self.inverse[:, 2]) * scale
        rows, cols = shape[:2]
        left, top = (max(0, int(np.floor(v))) for v in back.min(axis=0))
        return (
            left,
            top,
            min(cols, int(np.ceil(back[:, 0].max()))),
            min(rows, int(np.ceil(back[:, 1].max()))),
        )

    def crop(self, gray: np.ndarray, box: Box, margin: float, scale: float) -> np.ndarray:
        """The upright box, ``margin`` work pixels wider on each side, cut from the original
        grey image at its own resolution (uint8); paper white beyond its edges."""
        x0, y0, x1, y1 = box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        # crop pixel (u, v) -> upright (x0 + u / scale, y0 + v / scale) -> work -> original
        to_upright = np.float64([[1 / scale, 0, x0], [0, 1 / scale, y0], [0, 0, 1]])
        to_work = np.vstack([self.inverse, [0, 0, 1]])
        to_original = np.diag([scale, scale, 1.0]) @ to_work @ to_upright
        part = cv2.warpAffine(
            gray,
            to_original[:2],
            size,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=1.0,
        )
        return np.round(np.clip(part, 0, 1) * 255).astype(np.uint8)


def _without_rules(mask: np.ndarray, settings: DetectSettings) -> tuple[np.ndarray, float]:
    """The ink without printed rules, and the height of the writing measured on it."""
    rows, cols = mask.shape
    ink = mask.astype(np.uint8)
    ink &= ~_grown(
        _runs(ink, round(cols * settings.page_rule), 1)
        | _runs(ink, 1, round(rows * settings.page_rule))
    )
    height = _writing_height(ink)
    across = _runs(ink, round(settings.rule * height), 1)
    upright = _runs(ink, 1, round(settings.upright_rule * height))
    sides = _touching(_runs(ink, 1, round(settings.box_side * height)), _grown(across))
    return (ink & ~_grown(across | upright | sides)).astype(bool), height


def _runs(ink: np.ndarray, across: int, upright: int) -> np.ndarray:
    """The ink in straight runs ``across`` long and ``upright`` high (0/1 uint8)."""
    return cv2.morphologyEx(
        ink, cv2.MORPH_OPEN, np.ones((max(upright, 1), max(across, 1)), np.uint8)
    )


def _grown(mask: np.ndarray) -> np.ndarray:
    """The mask grown by a pixel, so that the anti-aliased edges of a rule go with it."""
    return cv2.dilate(mask, np.ones((3, 3), np.uint8))


def _touching(pieces: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The connected pieces of a mask that touch another mask (0/1 uint8): a box's sides."""
    count, labels = cv2.connectedComponents(pieces, connectivity=8)
    keep = np.zeros(count, np.uint8)
    keep[labels[other > 0]] = 1
    keep[0] = 0
    return keep[labels]


def _writing_height(ink: np.ndarray) -> float:
    """The height of the pieces of ink that hold half the ink (a median weighted by area):
    about a digit's height, whatever the number of specks and dots."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    if len(stats) < 2:
        return 1.0
    heights, areas = stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(heights)
    half = np.searchsorted(np.cumsum(areas[order]), areas.sum() / 2)
    return float(heights[order][half])


def _pieces(mask: np.ndarray, height: float, settings: DetectSettings) -> list[Box]:
    """The boxes of the connected pieces of ink that may be writing: not specks, not taller
    than writing, not frames (a piece around another one of a digit's size: a box left whole
    because it is tilted)."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    pieces = [
        (int(x), int(y), int(x + w), int(y + h))
        for x, y, w, h, _ in stats[1:]
        if max(w, h) >= settings.speck * height and h <= settings.tallest * height
    ]
    inner = [p for p in pieces if p[3] - p[1] >= settings.shortest * height]
    return [p for p in pieces if not any(_holds(p, q) for q in inner if q != p)]


def _holds(outer: Box, inner: Box) -> bool:
    """Whether ``inner`` lies within ``outer``."""
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
    )


def _lines(pieces: list[Box], height: float, settings: DetectSettings) -> list[Box]:
    """Pieces joined into lines: chains of neighbours overlapping vertically, close across."""
    parent = list(range(len(pieces)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(len(pieces)), key=lambda i: pieces[i][0])
    for n, i in enumerate(order):
        a = pieces[i]
        for j in order[n + 1 :]:
            b = pieces[j]
            if b[0] - a[2] > settings.gap * height:
                break
            overlap = min(a[3], b[3]) - max(a[1], b[1])
            if overlap >= settings.overlap * min(a[3] - a[1], b[3] - b[1]):
                parent[root(j)] = root(i)
    groups: dict[int, list[Box]] = {}
    for i, piece in enumerate(pieces):
        groups.setdefault(root(i), []).append(piece)
    lines = [
        (min(b[0] for b in g), min(b[1] for b in g), max(b[2] for b in g), max(b[3] for b in g))
        for g in groups.values()
    ]
    return [line for line in lines if line[3] - line[1] >= settings.shortest * height]
