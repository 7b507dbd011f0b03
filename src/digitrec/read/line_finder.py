"""Finding the text lines of a page, classically: no model, no TensorFlow.

1. The ink, the desk around a photographed page and the page's skew are found as
   ``digitrec.read.paper`` does it, on a copy at most ``work_side`` long; the ink is turned
   upright and the desk's is left out.
2. Printed rules are removed: ink in long thin horizontal or vertical runs (a morphological
   opening with a long line, or a Hough segment a little tilted), first runs long against the
   page (ruled paper, tables), then runs long against the writing's height, measured on what is
   left (boxes, combs, underlines), and the short sides of boxes that touch them.
3. Pieces (connected components) that are specks, slivers, far taller than writing, on the
   desk or frames around a digit are dropped; the others are joined into lines: neighbours
   that overlap vertically and lie close across.
4. Lines are returned top to bottom, each with the box of its ink in the image and an upright
   crop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from digitrec.errors import PageBudgetError
from digitrec.read.boxes import Box, box_around
from digitrec.read.decoding import array_to_gray
from digitrec.read.ink import shrink
from digitrec.read.paper import PaperSettings, find_ink, outline, skew

REGION_MARGIN = 0.25  # paper around a region cut out by ``region_crop``, in its heights
BLOCK = 256  # pieces compared with all the others at a time: bounds the memory of line finding


@dataclass(frozen=True)
class DetectSettings:
    """The proportions line finding relies on; lengths are in writing heights unless stated."""

    work_side: int = 1200  # the ink is found on a copy at most this long, pixels
    paper: PaperSettings = field(default_factory=PaperSettings)  # ink, desk and skew
    page_rule: float = 0.25  # first pass: a rule is a run this fraction of the page side...
    page_rule_thickness: float = 0.02  # ... and thinner than this fraction of it
    rule: float = 2.0  # second pass: a horizontal rule is a run this many heights long
    upright_rule: float = 2.5  # ... and a vertical rule one this many heights high
    box_side: float = 0.7  # a vertical run this high that touches a rule is a box's side
    tilt: float = 10.0  # rules are found up to this many degrees off the horizontal/vertical
    rule_thickness: float = 0.25  # and are thinner than this
    speck: float = 0.25  # a piece lower and narrower than this is a speck
    tallest: float = 3.0  # a piece higher than this is no writing (a scribble, a frame)
    overlap: float = 0.4  # pieces overlapping vertically by this fraction of the lower one...
    gap: float = 1.5  # ... and this far apart horizontally are on one line
    shortest: float = 0.4  # a line lower than this is a dash, a dot or a rule's remnant
    margin: float = 0.15  # the crop around a line's box
    smallest: int = 10  # writing is at least this high in the work image, pixels
    most_pieces: int = 4000  # a page with more pieces the size of writing is a pattern


@dataclass
class LineBox:
    """A text line found on a page: its box (x0, y0, x1, y1; exclusive ends) in the image's
    pixels, the line cut out upright (the page's skew undone) with a margin: uint8 grey, dark
    ink on light paper, and the affine map (2x3) from the crop's pixels to the image's."""

    box: Box
    crop: np.ndarray
    to_page: np.ndarray = field(default_factory=lambda: np.eye(2, 3), repr=False)

    def parts(self, longest: float) -> list[LineBox]:
        """The line cut into parts at most ``longest`` times as wide as high, each cut where the
        crop is lightest (between words, if any) in the last quarter of its part; itself if it
        is no wider."""
        rows, cols = self.crop.shape
        side = max(1, int(longest * rows))
        if cols <= side:
            return [self]
        paper = self.crop.mean(axis=0)
        cuts = [0]
        while cols - cuts[-1] > side:
            start = cuts[-1] + side - side // 4
            cuts.append(start + int(np.argmax(paper[start : cuts[-1] + side])) + 1)
        return [self._part(a, b) for a, b in zip(cuts, [*cuts[1:], cols], strict=True)]

    def _part(self, first: int, end: int) -> LineBox:
        """The columns ``first`` to ``end`` of the line as a line of its own."""
        to_page = self.to_page.copy()
        to_page[:, 2] += to_page[:, 0] * first
        crop = self.crop[:, first:end]
        x0, y0, x1, y1 = LineBox(self.box, crop, to_page).page_box((0, 0, end - first, len(crop)))
        box = (
            max(x0, self.box[0]),
            max(y0, self.box[1]),
            min(x1, self.box[2]),
            min(y1, self.box[3]),
        )
        return LineBox(box, crop, to_page)

    def page_box(self, box: Box) -> Box:
        """A box in the crop's pixels as the box around it in the image's pixels."""
        x0, y0, x1, y1 = box
        corners = np.float64([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        moved = corners @ self.to_page[:, :2].T + self.to_page[:, 2]
        (a, b), (c, d) = np.floor(moved.min(axis=0)), np.ceil(moved.max(axis=0))
        return (int(a), int(b), int(c), int(d))


def find_lines(image: np.ndarray, settings: DetectSettings = DetectSettings()) -> list[LineBox]:
    """The text lines of a page image (grey or colour array, see ``array_to_gray``), top to
    bottom. A page without ink has none."""
    gray = array_to_gray(image)
    scale = max(1.0, max(gray.shape) / settings.work_side)
    work = shrink(gray, scale)
    ink, beyond = find_ink(work, settings.paper)
    ink &= ~beyond
    if not ink.any():
        return []
    turn = _Turn(ink.shape, skew(ink | outline(beyond), settings.paper))
    ink, height = _without_rules(turn.upright(ink), settings)
    beyond = _grown(turn.upright(beyond).astype(np.uint8)) > 0
    labels, pieces = _pieces(ink, beyond, height, settings)
    lines = sorted(
        _lines(pieces, height, settings), key=lambda group: _group_box(pieces, group)[1::-1]
    )
    margin = settings.margin * height
    return [
        LineBox(
            turn.box_back(_points(labels, pieces, group), scale, gray.shape),
            *turn.crop(gray, _group_box(pieces, group), margin, scale),
        )
        for group in lines
    ]


def region_crop(gray: np.ndarray, box: Box) -> np.ndarray:
    """The part of a page in ``box`` (its pixels), with a margin of paper of ``REGION_MARGIN``
    of the box's height around it as far as the page goes."""
    x0, y0, x1, y1 = box
    margin = round(REGION_MARGIN * (y1 - y0)) + 1
    return gray[max(0, y0 - margin) : y1 + margin, max(0, x0 - margin) : x1 + margin]


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

    def box_back(self, points: np.ndarray, scale: float, shape: tuple[int, ...]) -> Box:
        """The box, in the original image (``scale`` times the work image), around the upright
        pixels at ``points`` (x, y): as tight as the ink, whatever the skew."""
        back = (points @ self.inverse[:, :2].T + self.inverse[:, 2] + 0.5) * scale
        (x0, y0), (x1, y1) = np.floor(back.min(axis=0)), np.ceil(back.max(axis=0))
        rows, cols = shape[:2]
        return (max(0, int(x0)), max(0, int(y0)), min(cols, int(x1)), min(rows, int(y1)))

    def crop(
        self, gray: np.ndarray, box: Box, margin: float, scale: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """The upright box, ``margin`` work pixels wider on each side, cut from the original
        grey image at its own resolution (uint8; paper white beyond its edges), and the affine
        map (2x3) from the crop's pixels to the image's."""
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
        return np.round(np.clip(part, 0, 1) * 255).astype(np.uint8), to_original[:2]


def _without_rules(mask: np.ndarray, settings: DetectSettings) -> tuple[np.ndarray, float]:
    """The ink without printed rules, and the height of the writing measured on it. Rules are
    thin: thick straight strokes (a marker's, a scribble's) stay."""
    rows, cols = mask.shape
    ink = mask.astype(np.uint8)
    thin = _thin(ink, settings.page_rule_thickness * max(rows, cols))
    length = settings.page_rule * max(rows, cols)
    ink &= ~_grown(_rule(thin, length, False, 0) | _rule(thin, length, True, 0))
    height = max(float(settings.smallest), _writing_height(ink))
    thin = _thin(ink, settings.rule_thickness * height)
    across = _rule(thin, settings.rule * height, False, settings.tilt)
    upright = _rule(thin, settings.upright_rule * height, True, settings.tilt)
    sides = _touching(_rule(thin, settings.box_side * height, True, settings.tilt), _grown(across))
    return (ink & ~_grown(across | upright | sides)).astype(bool), height


def _thin(ink: np.ndarray, thickness: float) -> np.ndarray:
    """The ink where no square ``thickness`` wide (at least 3 pixels) fits: thin strokes."""
    square = np.ones((max(3, round(thickness)),) * 2, np.uint8)
    return ink & ~cv2.morphologyEx(ink, cv2.MORPH_OPEN, square)


def _rule(thin: np.ndarray, length: float, upright: bool, tilt: float) -> np.ndarray:
    """The ink on straight lines at least ``length`` long, horizontal (vertical if
    ``upright``): exact runs, and with ``tilt`` segments up to that many degrees off."""
    runs = _runs(thin, 1, round(length)) if upright else _runs(thin, round(length), 1)
    return runs | _straight(thin, length, upright, tilt) if tilt else runs


def _runs(ink: np.ndarray, across: int, upright: int) -> np.ndarray:
    """The ink in straight runs ``across`` long and ``upright`` high (0/1 uint8)."""
    return cv2.morphologyEx(
        ink, cv2.MORPH_OPEN, np.ones((max(upright, 1), max(across, 1)), np.uint8)
    )


def _straight(ink: np.ndarray, length: float, upright: bool, tilt: float) -> np.ndarray:
    """The ink on straight segments at least ``length`` long within ``tilt`` degrees of the
    horizontal (or the vertical if ``upright``): rules left a little tilted by the perspective
    of a photo, which the runs of ``_runs`` miss (0/1 uint8). Where no segment that long and
    that steep fits in the image, or there are fewer ink pixels than votes it needs, none is
    looked for (the Hough transform is most of the time of reading a small image)."""
    votes = max(2, round(0.8 * length))
    room = (ink.shape[0] if upright else ink.shape[1]) / np.cos(np.radians(tilt))
    if length > room or cv2.countNonZero(ink) < votes:
        return np.zeros_like(ink)
    found = cv2.HoughLinesP(ink, 1, np.pi / 180, votes, minLineLength=length, maxLineGap=2)
    rules = np.zeros_like(ink)
    for x0, y0, x1, y1 in np.reshape([] if found is None else found, (-1, 4)):
        angle = np.degrees(np.arctan2(abs(y1 - y0), abs(x1 - x0)))
        if (angle >= 90 - tilt) if upright else (angle <= tilt):
            cv2.line(rules, (int(x0), int(y0)), (int(x1), int(y1)), 1, 3)
    return rules & ink


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


def _pieces(
    mask: np.ndarray, beyond: np.ndarray, height: float, settings: DetectSettings
) -> tuple[np.ndarray, dict[int, Box]]:
    """The connected pieces of ink (labels) and the boxes of those that may be writing: not
    specks, not taller than writing, not beyond the page, not frames (a piece around another
    one of a digit's size: a box left whole because it is tilted). More than ``most_pieces``
    of them is a ``PageBudgetError``: no page of numbers holds that many."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    x, y, w, h = (stats[1:, k] for k in range(4))
    outside = np.zeros(len(stats), bool)
    outside[labels[beyond]] = True
    kept = (
        (np.maximum(w, h) >= settings.speck * height)
        & (np.minimum(w, h) >= 2)  # a sliver a pixel thin is what is left of a rule
        & (h <= settings.tallest * height)
        & ~outside[1:]
    )
    if kept.sum() > settings.most_pieces:
        raise PageBudgetError(
            f"the page holds {kept.sum()} separate marks the size of writing, more than the "
            f"{settings.most_pieces} a page of numbers can: a pattern, not writing (crop the "
            "part with the numbers, or read it with --reader digits)"
        )
    found = np.flatnonzero(kept)
    boxes = np.stack([x[found], y[found], x[found] + w[found], y[found] + h[found]], axis=1)
    inner = boxes[boxes[:, 3] - boxes[:, 1] >= settings.shortest * height]
    frames = _frames(boxes, inner)
    return labels, {
        int(label) + 1: tuple(int(v) for v in box)
        for label, box, frame in zip(found, boxes, frames, strict=True)
        if not frame
    }


def _frames(boxes: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Which ``boxes`` (N, 4) hold one of the ``inner`` boxes other than themselves (bool);
    compared a block of boxes at a time, so that memory stays small."""
    frames = np.zeros(len(boxes), bool)
    for start in range(0, len(boxes), BLOCK):
        outer = boxes[start : start + BLOCK, None, :]
        holds = (outer[..., :2] <= inner[None, :, :2]).all(-1)
        holds &= (inner[None, :, 2:] <= outer[..., 2:]).all(-1)
        holds &= (outer != inner[None]).any(-1)
        frames[start : start + BLOCK] = holds.any(axis=1)
    return frames


def _lines(pieces: dict[int, Box], height: float, settings: DetectSettings) -> list[list[int]]:
    """Pieces joined into lines (their labels): chains of neighbours that overlap vertically
    and lie close across; lines lower than ``shortest`` heights are dropped."""
    labels = np.array(sorted(pieces, key=lambda label: pieces[label][0]), int)
    if not len(labels):
        return []
    boxes = np.array([pieces[label] for label in labels]).reshape(-1, 4)
    group_of = _chains(boxes, settings.gap * height, settings.overlap)
    order = np.argsort(group_of, kind="stable")
    starts = np.flatnonzero(np.diff(group_of[order], prepend=-1))
    groups = [part.tolist() for part in np.split(labels[order], starts[1:])]
    return [
        group
        for group in groups
        if _group_box(pieces, group)[3] - _group_box(pieces, group)[1] >= settings.shortest * height
    ]


def _chains(boxes: np.ndarray, gap: float, overlap: float) -> np.ndarray:
    """The chain each box (sorted by its left edge) belongs to (labels): boxes at most ``gap``
    apart across that overlap vertically by ``overlap`` of the lower one are linked. A block of
    boxes is compared with all at a time, and the chains found so far are carried as one link
    from each box to its chain's first, so that memory stays small whatever the page."""
    count = len(boxes)
    heights = boxes[:, 3] - boxes[:, 1]
    group_of = np.arange(count)
    for start in range(0, count, BLOCK):
        a = boxes[start : start + BLOCK, None, :]
        common = np.minimum(a[..., 3], boxes[None, :, 3]) - np.maximum(a[..., 1], boxes[None, :, 1])
        linked = boxes[None, :, 0] - a[..., 2] <= gap
        linked &= np.arange(count)[None, :] > np.arange(start, start + len(a))[:, None]
        linked &= common >= overlap * np.minimum(heights[start : start + BLOCK, None], heights)
        rows, cols = np.nonzero(linked)
        _, first = np.unique(group_of, return_index=True)  # the labels run from 0
        rows = np.concatenate([rows + start, np.arange(count)])
        cols = np.concatenate([cols, first[group_of]])
        graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(count, count))
        group_of = connected_components(graph, directed=False)[1]
    return group_of


def _group_box(pieces: dict[int, Box], group: list[int]) -> Box:
    """The box around the pieces of a group."""
    return box_around(pieces[label] for label in group)


def _points(labels: np.ndarray, pieces: dict[int, Box], group: list[int]) -> np.ndarray:
    """The (x, y) coordinates of the pixels of a group's pieces, float32 (N, 2)."""
    found = []
    for label in group:
        x0, y0, x1, y1 = pieces[label]
        rows, cols = np.nonzero(labels[y0:y1, x0:x1] == label)
        found.append(np.stack([cols + x0, rows + y0], axis=1))
    return np.concatenate(found).astype(np.float32)
