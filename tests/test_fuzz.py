"""Fuzzing the image reader: byte-mutated images of every accepted format either read or fail
with an ``ImageError``, never with any other exception.

The seed corpus is written here with Pillow (every format in grey, RGB, RGBA and palette where
the format has them, plus EXIF, 16-bit and multi-frame cases); a fixed-seed numpy generator
mutates it with bit flips, overwritten bytes, truncations, inserted and deleted runs and
corrupted header fields, so every run checks the same few thousand cases.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitrec.errors import ImageError
from digitrec.read.recognizer import Recognizer
from digitrec.read.results import Reading

MUTANTS_PER_SEED = 300
HEADER = 64  # header fields (sizes, offsets, counts) sit in the first bytes of every format
SPECIAL_BYTES = np.array([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF], dtype=np.uint8)

# (format, mode, save options): every accepted format in each mode it can store.
SEEDS = [
    ("PNG", "L", {}),
    ("PNG", "RGB", {}),
    ("PNG", "RGBA", {}),
    ("PNG", "P", {}),
    ("PNG", "I;16", {}),
    ("JPEG", "L", {}),
    ("JPEG", "RGB", {"quality": 90}),
    ("JPEG", "RGB", {"progressive": True}),
    ("JPEG", "RGB", {"exif": "orientation"}),
    ("BMP", "L", {}),
    ("BMP", "RGB", {}),
    ("BMP", "RGBA", {}),
    ("BMP", "P", {}),
    ("TIFF", "L", {}),
    ("TIFF", "RGB", {"compression": "tiff_deflate"}),
    ("TIFF", "RGBA", {"compression": "packbits"}),
    ("TIFF", "P", {"compression": "tiff_lzw"}),
    ("WEBP", "RGB", {"quality": 80}),
    ("WEBP", "RGBA", {"lossless": True}),
    ("GIF", "L", {}),
    ("GIF", "P", {"frames": 2}),
]


def digit_picture(mode: str) -> Image.Image:
    """A small dark '7' and a '1' on light paper, in ``mode``."""
    image = Image.new("RGB", (56, 40), (235, 230, 220))
    draw = ImageDraw.Draw(image)
    draw.line([(6, 8), (24, 8), (12, 32)], fill=(20, 30, 90), width=3)
    draw.line([(38, 8), (38, 32)], fill=(20, 30, 90), width=3)
    if mode == "RGBA":
        image = image.convert("RGBA")
        image.putalpha(Image.linear_gradient("L").resize(image.size))
        return image
    if mode == "P":
        return image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    if mode == "I;16":
        return Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
    return image.convert(mode)


def encode(fmt: str, mode: str, options: dict) -> bytes:
    image, options, buffer = digit_picture(mode), dict(options), io.BytesIO()
    if options.pop("exif", None):
        exif = Image.Exif()
        exif[0x0112] = 6  # rotated 90°: the reader must apply it
        options["exif"] = exif
    if frames := options.pop("frames", None):
        options.update(save_all=True, append_images=[image.rotate(90)] * (frames - 1))
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def flip_bits(data: bytearray, rng: np.random.Generator) -> bytearray:
    for position in rng.integers(0, len(data), rng.integers(1, 9)):
        data[position] ^= 1 << int(rng.integers(0, 8))
    return data


def overwrite_bytes(data: bytearray, rng: np.random.Generator) -> bytearray:
    for position in rng.integers(0, len(data), rng.integers(1, 5)):
        data[position] = int(rng.choice(SPECIAL_BYTES)) if rng.random() < 0.5 else rng.integers(256)
    return data


def truncate(data: bytearray, rng: np.random.Generator) -> bytearray:
    return data[: rng.integers(0, len(data))]


def insert_run(data: bytearray, rng: np.random.Generator) -> bytearray:
    position, length = rng.integers(0, len(data) + 1), rng.integers(1, 65)
    run = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    return data[:position] + run + data[position:]


def delete_run(data: bytearray, rng: np.random.Generator) -> bytearray:
    position = rng.integers(0, len(data))
    return data[:position] + data[position + rng.integers(1, 65) :]


def corrupt_header(data: bytearray, rng: np.random.Generator) -> bytearray:
    """Overwrite a 1-, 2- or 4-byte field in the header with an extreme or random value."""
    width = int(rng.choice([1, 2, 4]))
    position = rng.integers(0, max(1, min(HEADER, len(data)) - width))
    value = int(rng.choice([0, 1, 2**15, 2**16 - 1, 2**31 - 1, 2**32 - 1, rng.integers(2**16)]))
    field = (value % 2 ** (8 * width)).to_bytes(width, "big" if rng.random() < 0.5 else "little")
    data[position : position + width] = field
    return data


MUTATIONS: list[Callable[[bytearray, np.random.Generator], bytearray]] = [
    flip_bits,
    overwrite_bytes,
    truncate,
    insert_run,
    delete_run,
    corrupt_header,
]


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to three mutations chosen at random, applied in turn."""
    mutated = bytearray(data)
    for index in rng.integers(0, len(MUTATIONS), rng.integers(1, 4)):
        if mutated:
            mutated = MUTATIONS[index](mutated, rng)
    return bytes(mutated)


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load("default")


def test_seed_corpus_covers_every_format_and_reads_its_digits(recognizer):
    formats = {fmt for fmt, _, _ in SEEDS}
    assert formats == {"PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF"}
    for fmt, mode, options in SEEDS:
        data = encode(fmt, mode, options)
        assert Image.open(io.BytesIO(data)).format == fmt
        expected = "71" if "exif" not in options else None  # rotated: a different reading
        reading = recognizer.read(data)
        assert expected is None or reading.text == expected, (fmt, mode, reading.text)


@pytest.mark.filterwarnings(r"ignore:::PIL\.")  # Pillow's remarks on the malformed files
def test_mutated_images_read_or_raise_image_error_and_nothing_else(recognizer):
    rng = np.random.default_rng(20240917)
    outcomes: Counter[str] = Counter()
    escaped: Counter[tuple[str, str, str]] = Counter()
    for fmt, mode, options in SEEDS:
        seed = encode(fmt, mode, options)
        for _ in range(MUTANTS_PER_SEED):
            try:
                reading = recognizer.read(mutate(seed, rng))
            except ImageError:
                outcomes["ImageError"] += 1
            except Exception as exc:  # any other type is what the test looks for
                escaped[(f"{fmt} {mode}", type(exc).__name__, str(exc)[:60])] += 1
            else:
                assert isinstance(reading, Reading)
                outcomes["read"] += 1
    assert not escaped, "\n".join(f"{n}× {case}" for case, n in escaped.most_common())
    # Both outcomes are common, so the mutations reach the decoders and the pipeline alike.
    total = len(SEEDS) * MUTANTS_PER_SEED
    assert outcomes["read"] > 0.1 * total and outcomes["ImageError"] > 0.1 * total, outcomes


def random_picture(rng: np.random.Generator) -> np.ndarray:
    """A grey image of a random shape (1 to 3,000 pixels a side, at most 4 MP) holding one of
    the contents that stress a page reader, in either polarity."""
    rows, cols = np.exp(rng.uniform(0, np.log(3000), 2)).astype(int)
    cols = max(1, min(cols, 4_000_000 // rows))
    image = np.full((rows, cols), 255, np.uint8)
    kind = rng.integers(6)
    if kind == 1:  # noise
        image = rng.integers(0, 256, (rows, cols), dtype=np.uint8)
    elif kind == 2:  # a grid of dots
        step = int(rng.integers(2, 12))
        image[::step, ::step] = 0
    elif kind == 3:  # rules and boxes
        step = int(rng.integers(3, 60))
        image[::step, :] = 0
        image[:, :: int(rng.integers(3, 200))] = 0
    elif kind >= 4:  # strokes and blots
        picture = Image.fromarray(image)
        draw = ImageDraw.Draw(picture)
        for _ in range(rng.integers(1, 40)):
            x0, x1 = rng.integers(0, cols, 2)
            y0, y1 = rng.integers(0, rows, 2)
            draw.line(
                [(x0, y0), (x1, y1)], fill=int(rng.integers(0, 120)), width=1 + rng.integers(8)
            )
        image = np.asarray(picture)
    return 255 - image if rng.random() < 0.3 else image


@pytest.mark.parametrize("reader", ["auto", "pages"])
def test_random_shapes_and_contents_are_read_or_a_clear_error(recognizer, reader):
    rng = np.random.default_rng(20261207)
    escaped: Counter[tuple[str, str]] = Counter()
    for _ in range(120):
        image = random_picture(rng)
        try:
            recognizer.read(image, reader=reader)
        except ImageError:
            pass
        except Exception as exc:  # any other type is what the test looks for
            escaped[(f"{image.shape}", f"{type(exc).__name__}: {str(exc)[:60]}")] += 1
    assert not escaped, "\n".join(f"{n}× {case}" for case, n in escaped.most_common())


@pytest.mark.filterwarnings(r"ignore:::PIL\.")  # Pillow's remarks on the malformed files
def test_mutated_pages_read_by_the_page_reader_or_raise_image_error(recognizer):
    page = Image.new("L", (400, 160), 250)
    draw = ImageDraw.Draw(page)
    draw.line([(0, 70), (400, 70)], fill=120)
    for x in range(20, 380, 40):
        draw.line([(x, 20), (x + 14, 20), (x + 6, 60)], fill=20, width=3)
    draw.line([(20, 140), (200, 110)], fill=30, width=2)
    seeds = []
    for fmt in ("PNG", "JPEG", "WEBP"):
        buffer = io.BytesIO()
        page.save(buffer, fmt)
        seeds.append(buffer.getvalue())
    rng = np.random.default_rng(7)
    escaped: Counter[str] = Counter()
    for seed in seeds:
        for _ in range(100):
            try:
                recognizer.read(mutate(seed, rng), reader="pages")
            except ImageError:
                pass
            except Exception as exc:  # any other type is what the test looks for
                escaped[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1
    assert not escaped, escaped.most_common()
