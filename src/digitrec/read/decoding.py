"""Decoding: image files, encoded bytes, PIL images and arrays → 2-D float32 grey in [0, 1].

EXIF orientation is applied, alpha composited onto white, and only the first frame decoded.
Bad input of any kind becomes an ``ImageError`` saying what is wrong: the pixel limit is
checked before a pixel is decoded, only regular files are read (never more than
MAX_FILE_BYTES), and every failure of Pillow's decoders is caught where the decoding is forced.
Large images are converted to grey a band at a time, and reduced while decoding when the
caller needs no more than ``max_side`` pixels, so one costs little more than Pillow's own copy.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from digitrec.errors import ImageError

MAX_PIXELS = 40_000_000  # default pixel limit, against decompression bombs
MAX_FILE_BYTES = 64 * 1024 * 1024  # image files are read up to this size; larger ones refused
BAND_PIXELS = 1 << 19  # colour is converted to grey in bands of rows of about this many pixels
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as Pillow's "L"
InputImage = str | Path | bytes | Image.Image | np.ndarray
SIGNATURES = {  # how the files of the common formats start (WebP: RIFF....WEBP)
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def load_image(source: InputImage, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode ``source`` (a path, encoded bytes, a PIL image or an array) into 2-D float32 grey
    in [0, 1]; raise ``ImageError`` saying what is wrong with it."""
    return decode_image(source, max_pixels).pixels


@dataclass
class GrayImage:
    """A decoded image: ``pixels``, 2-D float32 grey in [0, 1], maybe reduced from the image's
    own ``size`` (height, width; upright), in which boxes found on the pixels are given."""

    pixels: np.ndarray
    size: tuple[int, int]


def decode_image(
    source: InputImage, max_pixels: int = MAX_PIXELS, max_side: int | None = None
) -> GrayImage:
    """Decode ``source`` like ``load_image``; with ``max_side``, reduce an image longer than
    that by a whole factor while decoding (to less than twice ``max_side``), which spares the
    memory and time of a full-size copy when no more detail is needed."""
    if isinstance(source, np.ndarray):
        _check_pixels(source.shape[1::-1] if source.ndim >= 2 else (source.size, 1), max_pixels)
        gray = array_to_gray(source)
        return GrayImage(gray, gray.shape)
    if isinstance(source, str | Path):
        source = _read_file(Path(source))
    if isinstance(source, bytes | bytearray | memoryview):
        return _decode(_open(bytes(source), max_pixels), max_side, draft=True)
    if isinstance(source, Image.Image):
        _check_pixels(source.size, max_pixels)
        return _decode(source, max_side, draft=False)
    raise ImageError(f"cannot read an image from a {type(source).__name__}")


def _read_file(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES. Anything else is refused before
    a byte is read (a FIFO would block, a device could be endless), and a file is never read
    past the limit, whatever its size claims."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as error:  # a socket cannot be opened; a directory cannot on Windows
        kind = _kind_at(path)
        raise ImageError(_not_regular(path, kind) if kind else _cannot_read(path, error)) from None
    try:
        status = os.fstat(fd)
        if kind := _special_kind(status.st_mode):
            raise ImageError(_not_regular(path, kind))
        if status.st_size > MAX_FILE_BYTES:
            raise ImageError(_too_large(path))
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ImageError(_cannot_read(path, error)) from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(_too_large(path))
    return data


def _special_kind(mode: int) -> str | None:
    """What a file that is not a regular file is, from its ``st_mode``; None for a regular one."""
    kinds = {
        stat.S_ISDIR: "a directory",
        stat.S_ISFIFO: "a named pipe (FIFO)",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in kinds.items() if test(mode)), "a special file")


def _kind_at(path: Path) -> str | None:
    """``_special_kind`` of the file at ``path``; None if it cannot be told."""
    try:
        return _special_kind(path.stat().st_mode)
    except OSError:
        return None


def _not_regular(path: Path, kind: str) -> str:
    return f"{path}: is {kind}, not an image file"


def _cannot_read(path: Path, error: OSError) -> str:
    return f"{path}: cannot read: {error.strerror or error}"


def _too_large(path: Path) -> str:
    return f"{path}: the file is over the size limit of {MAX_FILE_BYTES:,} bytes"


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open encoded bytes lazily and check the size against ``max_pixels`` before decoding."""
    if not data:
        raise ImageError("empty input: no image data")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if fmt := _format_by_signature(data):
            raise ImageError(f"truncated or corrupt {fmt} image: unreadable header") from None
        raise ImageError(f"not an image: found {describe_content(data)}") from None
    except Exception as error:  # a plugin that recognized its format failed on the header
        fmt = _format_by_signature(data)
        raise _decoding_error(error, f"{fmt} image" if fmt else "image") from None
    _check_pixels(image.size, max_pixels)
    return image


def _decode(image: Image.Image, max_side: int | None, draft: bool) -> GrayImage:
    """Decode (the current frame of) an image into upright grey, reduced to fit ``max_side``.

    A JPEG of ours (``draft``) is decoded straight to grey at the smallest scale its decoder
    offers that still fits. Any failure of Pillow becomes an ``ImageError``: its plugins raise
    many types (OSError, ValueError, SyntaxError, struct.error, EOFError, IndexError...) for
    malformed data, some only when the pixels are decoded, so the decoding is forced here.
    """
    width, height = image.size
    what = f"{image.format or image.mode} image"
    try:
        if draft:
            image.draft("L", _reduced_size(image.size, _reduction(image.size, max_side)))
        image.load()
        orientation = _orientation(image, what)
        gray = _to_gray(image, _reduction(image.size, max_side))
    except ImageError:
        raise
    except Exception as error:
        raise _decoding_error(error, what) from None
    size = (width, height) if orientation in TRANSPOSED else (height, width)
    return GrayImage(_upright(gray, orientation), size)


def _decoding_error(error: Exception, what: str) -> ImageError:
    if isinstance(error, Image.DecompressionBombError):
        return ImageError(f"image over the pixel limit: {error}")
    if isinstance(error, MemoryError):
        return ImageError(f"{what} too large to decode in the memory available")
    return ImageError(f"truncated or corrupt {what}: {str(error) or type(error).__name__}")


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            f"image of {width}×{height} = {width * height:,} pixels is over the limit of "
            f"{max_pixels:,} pixels"
        )


def _reduction(size: tuple[int, int], max_side: int | None) -> int:
    """The whole factor that brings the longer side to less than twice ``max_side``."""
    return max(1, max(size) // max_side) if max_side else 1


def _reduced_size(size: tuple[int, int], factor: int) -> tuple[int, int]:
    return (-(-size[0] // factor), -(-size[1] // factor))


def _format_by_signature(data: bytes) -> str | None:
    """The image format whose signature ``data`` starts with, if any."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in SIGNATURES.items() if data.startswith(magic)), None)


def describe_content(data: bytes) -> str:
    """A short description of what non-image bytes look like, for error messages."""
    head = data[:512]
    known = {b"%PDF": "a PDF document", b"PK\x03\x04": "a ZIP archive", b"\x1f\x8b": "gzip data"}
    for magic, name in known.items():
        if head.startswith(magic):
            return name
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"unrecognized binary data starting with {head[:8].hex(' ')}"
    lowered = text.lstrip().lower()
    if lowered.startswith(("<svg", "<?xml")) and "<svg" in lowered:
        return "an SVG drawing (vector images are not supported)"
    if lowered.startswith(("<!doctype html", "<html")):
        return "an HTML page"
    return f"text ({text.strip()[:40]!r}...)"


# EXIF orientation → the turn that makes the pixels upright (as ``ImageOps.exif_transpose``).
UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.T,
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].T,
    8: lambda a: np.rot90(a, 1),
}
TRANSPOSED = {5, 6, 7, 8}  # the orientations that swap width and height


def _orientation(image: Image.Image, what: str) -> int:
    """The image's EXIF orientation (1, upright, if it has none or an unknown one)."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception as error:  # a corrupt EXIF block fails with many types
        raise ImageError(f"corrupt EXIF data in {what}: {error}") from None
    return value if isinstance(value, int) and value in UPRIGHT else 1


def _upright(gray: np.ndarray, orientation: int) -> np.ndarray:
    """Apply the EXIF orientation, so the pixels are as the camera's user saw them."""
    turn = UPRIGHT.get(orientation)
    return np.ascontiguousarray(turn(gray)) if turn else gray


def _to_gray(image: Image.Image, factor: int) -> np.ndarray:
    """A loaded image as float32 grey in [0, 1], reduced ``factor`` times by area averaging.
    It is converted a band of rows at a time, so no full-size colour or float copy is made."""
    width, height = image.size
    if image.mode == "F":  # the whole image's range, not a band's, for the error message
        _check_range(*image.getextrema())
    rows = factor * max(1, BAND_PIXELS // (width * factor))  # a whole number of blocks
    out_width, out_height = _reduced_size(image.size, factor)
    gray = np.empty((out_height, out_width), dtype=np.float32)
    for top in range(0, height, rows):
        band = array_to_gray(_pil_to_array(image.crop((0, top, width, min(top + rows, height)))))
        if factor > 1:
            band_height = -(-band.shape[0] // factor)
            band = cv2.resize(band, (out_width, band_height), interpolation=cv2.INTER_AREA)
        gray[top // factor : top // factor + band.shape[0]] = band
    return gray


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """Pixels as an array whose dtype sets its scale: uint8, uint16 (16-bit) or float in [0, 1]."""
    if image.mode.startswith("I"):  # 16-bit grey (I;16*) or 32-bit ints holding 16-bit values
        return np.clip(np.asarray(image, dtype=np.int64), 0, 65535).astype(np.uint16)
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    if image.mode in ("L", "1"):
        return np.asarray(image.convert("L"))
    if image.has_transparency_data:
        return np.asarray(image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def array_to_gray(array: np.ndarray) -> np.ndarray:
    """An (H, W), (H, W, 1|2|3|4) array (uint8, uint16, bool or float in [0, 1]) as 2-D float32
    grey in [0, 1]; alpha composited onto white."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4)):
        raise ImageError(
            f"unsupported array shape {array.shape}: expected (H, W) or (H, W, C) with 1 to 4 "
            "channels (grey, grey+alpha, RGB, RGBA)"
        )
    if array.size == 0:
        raise ImageError(f"empty input: the array has shape {array.shape}")
    values = _unit_scale(array)
    if values.ndim == 3 and values.shape[2] in (2, 4):
        alpha = values[..., -1:]
        values = values[..., :-1] * alpha + (1 - alpha)
    if values.ndim == 3:
        values = values[..., 0] if values.shape[2] == 1 else values @ LUMA
    return np.ascontiguousarray(values, dtype=np.float32)


def _unit_scale(array: np.ndarray) -> np.ndarray:
    """Values as float32 in [0, 1]: integers by their type's range, floats as they are."""
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        top = 65535 if array.dtype.itemsize > 1 else 255
        return np.clip(array.astype(np.float32) / top, 0, 1)
    if not np.issubdtype(array.dtype, np.floating):
        raise ImageError(f"unsupported array type {array.dtype}")
    values = array.astype(np.float32)
    if not np.isfinite(values).all():
        raise ImageError("the array holds NaN or infinite values")
    _check_range(values.min(), values.max())
    return values


def _check_range(low: float, high: float) -> None:
    if low < 0 or high > 1:
        raise ImageError(f"float pixel values must lie in [0, 1]; found {low:g} to {high:g}")
