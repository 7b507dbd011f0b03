"""Make the sample images in examples/ from MNIST test digits, and check that the shipped models
read each one exactly.

- ``digit.png``: one digit drawn dark on white, as on the drawing page;
- ``number.png``: a row of five digits photographed as a user's image;
- ``form.jpg``: a photographed form (a comb field on a page on a desk), test style;
- ``page.png``: two lines of numbers on ruled paper, test style.

Each is made from a fixed seed, so the same MNIST files give the same images. An image the
shipped models do not read exactly is an error: nothing is written for it.

    DIGITREC_DATA_DIR=/path/to/mnist python tools/make_examples.py
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from digitrec import Recognizer, load_dataset
from digitrec.synth.pages import page_sample
from digitrec.synth.user_digits import Style, digit_string_image, user_digit_image

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
MAX_BYTES = 100_000
JPEG_QUALITY = 90

# (test images, test labels, seed) -> the picture and the text it holds
Maker = Callable[[np.ndarray, np.ndarray, int], tuple[Image.Image, str]]


def drawn_digit(images: np.ndarray, labels: np.ndarray, seed: int) -> tuple[Image.Image, str]:
    """One MNIST digit enlarged, dark ink on white, nothing else varied."""
    rng = np.random.default_rng(seed)
    index = int(rng.integers(len(images)))
    return user_digit_image(images[index], rng, Style.clean()), str(labels[index])


def photographed_number(
    images: np.ndarray, labels: np.ndarray, seed: int
) -> tuple[Image.Image, str]:
    """Five MNIST digits in a row, photographed under uneven light."""
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, len(images), 5)
    image, _ = digit_string_image(list(images[chosen]), rng)
    return image, "".join(str(labels[i]) for i in chosen)


def page_of(layout: str) -> Maker:
    """A page of the page generator's ``layout`` in the test style."""

    def make(images: np.ndarray, labels: np.ndarray, seed: int) -> tuple[Image.Image, str]:
        sample = page_sample(layout, images, labels, seed, "test")
        return Image.fromarray(sample.image), sample.text

    return make


@dataclass(frozen=True)
class Example:
    name: str
    make: Maker
    seed: int


EXAMPLES = (
    Example("digit.png", drawn_digit, 0),
    Example("number.png", photographed_number, 0),
    Example("form.jpg", page_of("photo"), 12),
    Example("page.png", page_of("multiline"), 2),
)


def encoded(image: Image.Image, name: str) -> bytes:
    """The image as the bytes of its file: JPEG for ``.jpg``, else optimized PNG."""
    buffer = io.BytesIO()
    if name.endswith(".jpg"):
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def make_examples(out: Path, images: np.ndarray, labels: np.ndarray) -> list[str]:
    """Write every example into ``out``; return the problems (none when all were written)."""
    recognizer = Recognizer.load("default", threads=1)
    problems = []
    out.mkdir(parents=True, exist_ok=True)
    for example in EXAMPLES:
        image, text = example.make(images, labels, example.seed)
        content = encoded(image, example.name)
        read = recognizer.read(content).text
        if read != text:
            problems.append(f"{example.name}: holds {text!r}, the shipped models read {read!r}")
        elif len(content) > MAX_BYTES:
            problems.append(f"{example.name}: {len(content):,} bytes, over {MAX_BYTES:,}")
        else:
            (out / example.name).write_bytes(content)
            print(f"{out / example.name}: {text!r}, {len(content):,} bytes")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR, help="default: examples/")
    parser.add_argument("--data-dir", help="MNIST's folder (default: $DIGITREC_DATA_DIR)")
    args = parser.parse_args()
    data = load_dataset("mnist", args.data_dir, download=False, progress=False)
    problems = make_examples(args.out, data.test_images, data.test_labels)
    for problem in problems:
        print(f"not written: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
