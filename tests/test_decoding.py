"""Decoding: every common image kind and array layout, EXIF orientation, reduction while
decoding, and a clear ``ImageError`` for every kind of bad input, file or data."""

from __future__ import annotations

import io
import os
import socket
import struct

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from digitrec.errors import ImageError
from digitrec.read import decoding
from digitrec.read.decoding import decode_image, load_image


def marked_image(size: tuple[int, int] = (40, 30)) -> np.ndarray:
    """A white uint8 image (width, height = size) with a black square at its top-left."""
    array = np.full(size[::-1], 255, dtype=np.uint8)
    array[2:10, 2:10] = 0
    return array


# --- decoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "tolerance"),
    [("PNG", 0), ("BMP", 0), ("TIFF", 0), ("GIF", 0), ("WEBP", 0.03), ("JPEG", 0.03)],
)
def test_each_format_decodes_to_its_pixels(tmp_path, fmt, tolerance):
    path = tmp_path / f"image.{fmt.lower()}"
    Image.fromarray(marked_image()).save(path, fmt)
    gray = load_image(path)
    assert gray.dtype == np.float32 and gray.shape == (30, 40)
    assert np.abs(gray - marked_image() / 255).mean() <= tolerance + 1e-6
    assert gray[5, 5] < 0.1 and gray[20, 30] > 0.9


def test_sixteen_bit_png_keeps_its_precision(tmp_path):
    values = np.linspace(0, 65535, 30 * 40).reshape(30, 40).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    gray = load_image(tmp_path / "deep.png")
    np.testing.assert_allclose(gray, values / 65535, atol=1e-6)


def test_palette_image_decodes_to_its_colours_grey_level():
    image = Image.fromarray(np.dstack([marked_image()] * 3)).convert("P")
    image.putpalette([0, 0, 0] * 1 + [255, 255, 255] * 255)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    np.testing.assert_allclose(load_image(buffer.getvalue()), marked_image() / 255, atol=1e-6)


def test_transparency_is_composited_onto_white():
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)  # black everywhere
    rgba[:5, :, 3] = 255  # opaque top half
    rgba[5:, :, 3] = 0  # fully transparent bottom half
    rgba[5:, :5, 3] = 128  # half transparent bottom left
    gray = load_image(Image.fromarray(rgba, "RGBA"))
    assert np.all(gray[:5] == 0) and np.all(gray[5:, 5:] == 1)
    np.testing.assert_allclose(gray[5:, :5], 1 - 128 / 255, atol=1e-6)


def test_colour_becomes_luma():
    red = np.zeros((4, 4, 3), dtype=np.uint8)
    red[..., 0] = 255
    np.testing.assert_allclose(load_image(red), 0.299, atol=1e-6)
    np.testing.assert_allclose(load_image(Image.fromarray(red)), 0.299, atol=1e-6)


def test_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("L", (8, 8), level) for level in (0, 255, 128)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert np.all(load_image(tmp_path / "anim.gif") == 0)


def test_exif_orientation_is_applied():
    image = Image.fromarray(marked_image((40, 30)))  # 40 wide, square at top-left
    exif = image.getexif()
    exif[0x0112] = 6  # the viewer turns the stored pixels 90° clockwise
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=95)
    gray = load_image(buffer.getvalue())
    assert gray.shape == (40, 30)  # turned upright: now 30 wide
    assert gray[5, -6] < 0.2 and gray[5, 5] > 0.8  # the square is now at the top-right


@pytest.mark.parametrize(
    "array",
    [
        marked_image(),
        marked_image()[..., None],
        np.dstack([marked_image()] * 3),
        np.dstack([marked_image()] * 3 + [np.full((30, 40), 255, np.uint8)]),
        marked_image().astype(np.uint16) * 257,
        marked_image() / 255.0,
        marked_image() > 128,
    ],
    ids=["gray", "gray1", "rgb", "rgba", "uint16", "float", "bool"],
)
def test_arrays_of_every_layout_and_type_are_accepted(array):
    np.testing.assert_allclose(load_image(array), marked_image() / 255, atol=1e-6)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (b"", "empty input"),
        (b"Hello, this is a text file\n", "not an image: found text"),
        (b"%PDF-1.7 ...", "not an image: found a PDF"),
        (np.zeros((2, 3, 5)), "unsupported array shape (2, 3, 5)"),
        (np.zeros(7), "unsupported array shape (7,)"),
        (np.zeros((2, 2, 2, 2)), "unsupported array shape"),
        (np.zeros((0, 5)), "empty input"),
        (np.full((3, 3), 200.0), "must lie in [0, 1]"),
        (np.full((3, 3), np.nan), "NaN"),
        (12, "cannot read an image from a int"),
    ],
)
def test_bad_input_gets_a_specific_error(source, message):
    with pytest.raises(ImageError, match=None) as error:
        load_image(source)
    assert message in str(error.value)


def test_truncated_png_is_reported_as_truncated():
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)).save(
        buffer, "PNG"
    )
    with pytest.raises(ImageError, match="truncated or corrupt PNG"):
        load_image(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def test_file_errors_name_the_problem(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty input"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)


def test_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    Image.new("L", (20, 30)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match=r"20×30 = 600 pixels is over the limit of 599"):
        load_image(tmp_path / "big.png", max_pixels=599)
    with pytest.raises(ImageError, match="over the limit"):
        load_image(np.zeros((30, 20)), max_pixels=599)
    assert load_image(tmp_path / "big.png", max_pixels=600).shape == (30, 20)


def test_pillows_own_decompression_bomb_guard_becomes_an_image_error(tmp_path, monkeypatch):
    Image.new("L", (40, 40)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 1600 pixels: over twice the limit
    with pytest.raises(ImageError, match="pixel limit"):
        load_image(tmp_path / "bomb.png")


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_float_image_out_of_range_is_refused_with_the_whole_images_range(monkeypatch):
    values = np.zeros((60, 50), dtype=np.float32)
    values[-1, -1] = 2.5  # in the last band only
    monkeypatch.setattr(decoding, "BAND_PIXELS", 500)
    with pytest.raises(ImageError, match=r"must lie in \[0, 1\]; found 0 to 2.5"):
        load_image(encoded(Image.fromarray(values), "TIFF"))


@pytest.mark.parametrize("orientation", range(1, 10))  # 9: no such orientation, none applied
def test_every_exif_orientation_is_applied_as_pillow_does(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(Image.fromarray(marked_image((40, 30))), exif=exif)
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    np.testing.assert_array_equal(load_image(data), np.asarray(upright) / np.float32(255))
    assert decode_image(data).size == upright.size[::-1]


def test_corrupt_exif_data_is_an_image_error(monkeypatch):
    def fail(self):
        raise SyntaxError("not a TIFF file (header b'garbage' not valid)")

    monkeypatch.setattr(Image.Image, "getexif", fail)
    with pytest.raises(ImageError, match="corrupt EXIF data in PNG image: not a TIFF file"):
        load_image(encoded(Image.new("L", (8, 8))))


# --- large images ---------------------------------------------------------------------------


def large_picture(mode: str, size: tuple[int, int]) -> Image.Image:
    """Smooth shapes on a background, in ``mode``, of ``size`` (width, height)."""
    rows, cols = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    array = 0.5 + 0.4 * np.sin(cols / 97) * np.cos(rows / 61)
    image = Image.fromarray(np.round(array * 255).astype(np.uint8))
    if mode == "RGBA":
        image = Image.merge("RGBA", [image, image.rotate(90), image, image.transpose(1)])
    return image.convert(mode)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P"])
def test_bands_of_rows_convert_like_the_whole_image(mode, monkeypatch):
    data = encoded(large_picture(mode, (300, 200)))
    whole = load_image(data)
    monkeypatch.setattr(decoding, "BAND_PIXELS", 3_000)  # 10 rows a band
    np.testing.assert_array_equal(load_image(data), whole)


@pytest.mark.parametrize(("mode", "orientation"), [("L", 1), ("RGBA", 6), ("P", 3)])
def test_large_image_is_reduced_while_decoding_and_keeps_its_size(mode, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(large_picture(mode, (2100, 1400)), exif=exif, compress_level=1)
    full = load_image(data)
    reduced = decode_image(data, max_side=1024)
    assert reduced.size == full.shape
    assert max(reduced.pixels.shape) < 2 * 1024 and reduced.pixels.dtype == np.float32
    expected = cv2.resize(full, reduced.pixels.shape[::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.pixels - expected).max() < 0.01


def test_large_jpeg_is_decoded_at_the_reduced_scale_its_decoder_offers():
    data = encoded(large_picture("RGB", (3100, 2000)), "JPEG", quality=95)
    full = load_image(data)
    reduced = decode_image(data, max_side=1024)
    # JPEG's decoder offers 1/2 (not 1/3) of the size: 1550 wide, then no band reduction.
    assert reduced.pixels.shape == (1000, 1550) and reduced.size == (2000, 3100)
    expected = cv2.resize(full, (1550, 1000), interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.pixels - expected).mean() < 0.01


# --- bad data ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "truncated or corrupt PNG image: unreadable header"),
        (b"GIF89a" + bytes(10), "truncated or corrupt GIF image"),
        (b"BM" + bytes(12) + struct.pack("<I", 40) + bytes(40), "corrupt BMP image"),
    ],
    ids=["png", "gif", "bmp"],
)
def test_a_corrupt_header_names_the_format_it_claims(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


@pytest.mark.parametrize(
    "error",
    [
        OSError("decoder error -2"),
        ValueError("tile cannot extend outside image"),
        SyntaxError("not a TIFF file"),
        struct.error("unpack requires a buffer of 4 bytes"),
        EOFError(),
        IndexError("list index out of range"),
        TypeError("unsupported operand"),
        ZeroDivisionError("division by zero"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_any_failure_while_decoding_becomes_an_image_error(error, monkeypatch):
    def fail(self):
        raise error

    monkeypatch.setattr(ImageFile.ImageFile, "load", fail)
    with pytest.raises(ImageError, match="truncated or corrupt PNG image: ") as raised:
        load_image(encoded(Image.new("L", (8, 8))))
    assert str(error) in str(raised.value) or type(error).__name__ in str(raised.value)


def test_running_out_of_memory_while_decoding_is_an_image_error(monkeypatch):
    def fail(self):
        raise MemoryError

    monkeypatch.setattr(ImageFile.ImageFile, "load", fail)
    with pytest.raises(ImageError, match="too large to decode in the memory available"):
        load_image(encoded(Image.new("L", (8, 8))))


# --- files that are not regular files, or too large -------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ImageError, match=r"pipe\.png: is a named pipe \(FIFO\), not an image"):
        load_image(tmp_path / "pipe.png")


@pytest.mark.timeout(10)
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_an_endless_device_is_refused_without_reading_it():
    with pytest.raises(ImageError, match="/dev/zero: is a character device, not an image"):
        load_image("/dev/zero")


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets here")
def test_a_socket_is_refused(tmp_path):
    path = tmp_path / "s.png"
    if len(str(path)) > 100:
        pytest.skip("the temporary path is too long for a Unix socket")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(ImageError, match=r"s\.png: is a socket, not an image"):
            load_image(path)


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    huge = tmp_path / "huge.png"
    with huge.open("wb") as file:
        file.truncate(1 << 40)  # a terabyte, sparse: reading it all would take hours
    with pytest.raises(ImageError, match=r"huge\.png: the file is over the size limit"):
        load_image(huge)


def test_a_file_is_read_no_further_than_the_limit_whatever_its_size_claims(tmp_path, monkeypatch):
    path = tmp_path / "growing.png"
    path.write_bytes(encoded(Image.new("L", (50, 50), 255)))
    size = path.stat().st_size
    claimed = os.fstat

    def claims_empty(fd: int) -> os.stat_result:  # as files in /proc do
        status = list(claimed(fd))
        status[6] = 0  # st_size
        return os.stat_result(status)

    monkeypatch.setattr(decoding.os, "fstat", claims_empty)
    monkeypatch.setattr(decoding, "MAX_FILE_BYTES", size - 1)
    with pytest.raises(ImageError, match="over the size limit"):
        load_image(path)
    monkeypatch.setattr(decoding, "MAX_FILE_BYTES", size)
    assert load_image(path).shape == (50, 50)
