"""Paper, light and camera: composing ink layers on paper, a page photographed on a desk
(rotated, in perspective), uneven light and shadows, blur, sensor noise and JPEG.

Images here are float32 RGB in [0, 1] until ``capture`` makes the 8-bit grey or RGB result.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from digitrec.read.decoding import LUMA
from digitrec.synth.style import Camera, Colour
from digitrec.synth.user_digits import disk_kernel, jpeg

DESK_HUES = ((1.25, 0.95, 0.7), (1.0, 1.0, 1.0), (0.9, 1.05, 0.95), (0.85, 0.95, 1.2))
Layer = tuple[np.ndarray, Colour]  # ink (H, W) in 0..1 and its colour


def compose(paper: Colour, layers: list[Layer], colour: bool) -> np.ndarray:
    """Inks on paper: each absorbs the light its colour does not reflect, where it lies.
    (H, W, 3) RGB if ``colour``, else (H, W, 1) grey."""
    shape = layers[0][0].shape
    image = np.empty((*shape, 3 if colour else 1), np.float32)
    image[:] = tone(paper, colour)
    for ink, ink_colour in layers:
        image *= 1 - ink[..., None] * (1 - tone(ink_colour, colour))
    return image


def tone(rgb: Colour | np.ndarray, colour: bool) -> np.ndarray:
    """An RGB colour as it is in the image: itself, or its grey level."""
    rgb = np.asarray(rgb, np.float32)
    return rgb if colour else rgb[None] @ LUMA


def paper_colour(camera: Camera, rng: np.random.Generator, colour: bool) -> Colour:
    """White-ish paper, slightly tinted in a colour image."""
    level = rng.uniform(*camera.paper)
    tint = rng.uniform(-0.04, 0.04, 3) if colour else np.zeros(3)
    return tuple(float(c) for c in np.clip(level + tint, 0, 1))


def faded(colour: Colour, camera: Camera, rng: np.random.Generator) -> Colour:
    """The colour lightened towards white: faint ink, low contrast."""
    fade = rng.uniform(*camera.fade)
    return tuple(c + (1 - c) * fade for c in colour)


def on_desk(
    page: np.ndarray, camera: Camera, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The page photographed lying on a darker desk: rotated, in mild perspective, its edge
    showing. Returns the photo and the homography from page to photo pixels."""
    rows, cols = page.shape[:2]
    out_rows, out_cols = round(rows * rng.uniform(1.1, 1.3)), round(cols * rng.uniform(1.1, 1.3))
    angle = np.radians(rng.uniform(-camera.rotation, camera.rotation))
    corners = np.float32([[0, 0], [cols, 0], [cols, rows], [0, rows]])
    centred = corners - (cols / 2, rows / 2)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    turned = centred @ rotation.T
    span = turned.max(axis=0) - turned.min(axis=0)
    scale = min(out_cols / span[0], out_rows / span[1]) * rng.uniform(0.8, 0.97)
    jitter = rng.uniform(-camera.perspective, camera.perspective, (4, 2)) * (cols, rows) * scale
    placed = turned * scale + jitter + (out_cols / 2, out_rows / 2)
    placed += rng.uniform(-0.03, 0.03, 2) * (out_cols, out_rows)
    homography = cv2.getPerspectiveTransform(corners, placed.astype(np.float32))
    size = (out_cols, out_rows)
    warped = cv2.warpPerspective(page, homography, size, flags=cv2.INTER_AREA)
    warped = warped.reshape(out_rows, out_cols, page.shape[2])
    cover = cv2.warpPerspective(np.ones((rows, cols), np.float32), homography, size)[..., None]
    desk = _desk((out_rows, out_cols), camera, rng, page.shape[2] == 3)
    return cover * warped + (1 - cover) * desk, homography


def askew(page: np.ndarray, tilt: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The page (H, W, C) seen in mild perspective, its corners moved up to ``tilt`` of its
    sides, the paper extended at the borders; and the homography from page to picture."""
    rows, cols = page.shape[:2]
    corners = np.float32([[0, 0], [cols, 0], [cols, rows], [0, rows]])
    moved = corners + rng.uniform(-tilt, tilt, (4, 2)).astype(np.float32) * (cols, rows)
    homography = cv2.getPerspectiveTransform(corners, moved.astype(np.float32))
    warped = cv2.warpPerspective(
        page, homography, (cols, rows), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return warped.reshape(page.shape), homography


def _desk(
    shape: tuple[int, int], camera: Camera, rng: np.random.Generator, colour: bool
) -> np.ndarray:
    """A darker surface with a soft grain: wood, cloth or a table top."""
    hue = np.asarray(DESK_HUES[rng.integers(len(DESK_HUES))], np.float32)
    level = tone(np.clip(rng.uniform(*camera.desk) * hue, 0, 1), colour)
    cells = (8, 24) if rng.random() < 0.5 else (24, 8)
    grain = rng.normal(0, 1, cells).astype(np.float32)
    grain = cv2.resize(grain, shape[::-1], interpolation=cv2.INTER_CUBIC)
    return level * (1 + 0.12 * grain[..., None])


def light(image: np.ndarray, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """Uneven light: a brightness gradient across the image and maybe a soft shadow."""
    rows, cols = image.shape[:2]
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * x + np.sin(angle) * y
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    field = 1 - rng.uniform(*camera.gradient) * ramp
    if rng.random() < camera.shadow_probability:
        shade = _edge_shadow if camera.shadow == "edge" else _blob_shadow
        field *= 1 - rng.uniform(*camera.shadow_depth) * shade(x, y, rng)
    return image * field[..., None]


def _edge_shadow(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The shadow of an object's straight edge (a hand, a phone): a half-plane, softened."""
    diagonal = float(np.hypot(x.max(), y.max()))
    angle = rng.uniform(0, 2 * np.pi)
    through = rng.uniform((0, 0), (x.max(), y.max()))
    distance = np.cos(angle) * (x - through[0]) + np.sin(angle) * (y - through[1])
    softness = rng.uniform(0.01, 0.12) * diagonal
    return 1 / (1 + np.exp(-np.clip(distance / softness, -30, 30)))


def _blob_shadow(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round soft shadows: one to three elliptical patches."""
    diagonal = float(np.hypot(x.max(), y.max()))
    shade = np.zeros_like(x)
    for _ in range(rng.integers(1, 4)):
        cx, cy = rng.uniform((0, 0), (x.max(), y.max()))
        rx, ry = rng.uniform(0.1, 0.45, 2) * diagonal
        shade = np.maximum(shade, np.exp(-(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)))
    return shade


def capture(
    image: np.ndarray, camera: Camera, rng: np.random.Generator, scale: float
) -> np.ndarray:
    """The camera's picture of the scene (H, W, 1 or 3): blurred (``scale``: the writing's
    height over 40 px), noisy, 8-bit grey (H, W) or RGB (H, W, 3), maybe JPEG-compressed."""
    if image.shape[2] == 1:
        image = image[..., 0]
    radius = rng.uniform(*camera.blur_radius) * scale
    if radius >= 0.3:
        if camera.blur == "gaussian":
            image = cv2.GaussianBlur(image, (0, 0), radius)
        else:
            disk = disk_kernel(max(radius, 1.0)).astype(np.float32)
            image = cv2.filter2D(image, -1, disk / disk.sum())
    image = image + rng.normal(0, rng.uniform(*camera.noise), image.shape).astype(np.float32)
    picture = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    if rng.random() < camera.jpeg_probability:
        quality = int(rng.integers(camera.jpeg_quality[0], camera.jpeg_quality[1] + 1))
        picture = jpeg(picture, quality)
    return np.asarray(picture)
