"""Reading pages side by side: readers compared on the same generated pages, one row per layout.

Each reader (``READERS``: the recognizer's "auto", "pages" and "digits" readers — "digits" is the
connected-component reader that came before the page reader —; "tesseract", Tesseract 5
restricted to digits) reads the same images, in one run:

- pages of the digit layouts of ``digitrec.synth`` (photo, touching, comb, gaps, multiline):
  the text read exactly, lines joined by "\\n";
- "letters" pages (printed words, no digit): the share that produce any digit (lower is better);
- "blank", "noise" and "scribble" pages: the share read as empty or rejected (no digit);
- single MNIST digits rendered as users' images: read exactly;
- "ballpoint" rows: the five digit layouts in turn and single digits, written with pens finer
  than any of the page generator's styles (``FINE_PENS``: strokes as thin as a ballpoint's on a
  photographed page, 5-7.5% of the digit's height where MNIST's are about 11%): read exactly;
- real handwriting that is not MNIST: scikit-learn's bundled digits (43 writers, 8×8), enlarged
  smoothly, single as users' images and in lines of 3-8 digits written by the page generator's
  line machinery (``line_samples``): read exactly.
- with ``--real`` (the real sets in ``DIGITREC_REAL_DIR``, else ../shared/realdigits): ORAND-CAR-A's
  cheque amounts (its training part, which no shipped model learned), CVL valid's single digits
  as users' crops and lines of them (``benchmarks/real_sets.py`` makes them): their digits read
  exactly, anything else in a reading left out; with ``--finetuned RUN`` also ORAND-CAR-A's
  held-out fifth (``benchmarks/finetune_strings.py``'s split, seed 0), and a reader "auto
  --model RUN" reads every row.

``--split validation`` (the default) writes its pages with the validation digits (the last
5,000 training images) in the validation style, and uses the first half of scikit-learn's
digits: settings may be chosen on it. ``--split test`` uses the MNIST test digits in the test
style and the other half of scikit-learn's digits, for the final figures only.
Each reader gets one thread; the time is the mean wall time per image, decoding included.

    python benchmarks/reading.py [--pages 300] [--split validation] \\
        [--readers auto,pages,digits,tesseract] [--seed 0] [--real] [--previous REV]
        [--finetuned RUN] [--write-readme]

``--previous REV`` also reads with the models shipped at a git revision (``real_sets.py``'s).
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from common import REAL_SETS, machine, markdown_table, write_into_readme

from digitrec.data import load_dataset, split_validation
from digitrec.read.image_folders import string_labels
from digitrec.read.recognizer import READERS as RECOGNIZER_READERS
from digitrec.read.recognizer import Recognizer
from digitrec.realdigits import orand_folder
from digitrec.synth.pages import line_samples, page_sample
from digitrec.synth.style import PageStyle, page_style
from digitrec.synth.user_digits import Style, user_digit_image
from digitrec.training.config import TrainConfig
from digitrec.training.evaluate import digits_of

SPLITS = ("validation", "test")
# scikit-learn's single digits as users' images: 28-64 px high, a little noise, no JPEG.
SKLEARN_STYLE = Style(
    scale=(1.4, 3.2), max_rotation=5.0, stroke=(0.0, 0.0), noise=(0.0, 0.03), jpeg_probability=0.0
)

# Pens finer than the styles' (stroke radius change in MNIST pixels): a ballpoint's strokes on a
# photographed page. The test split's reach finer than the validation split's.
FINE_PENS = {"validation": (-0.9, -0.5), "test": (-1.0, -0.6)}
DIGIT_LAYOUTS = ("photo", "touching", "comb", "gaps", "multiline")

Reader = Callable[[np.ndarray], str]  # an image (grey or RGB uint8) -> the text read


@dataclass
class Case:
    """An image to read and its true text ("" when it holds no digit)."""

    image: np.ndarray
    truth: str


@dataclass
class Task:
    """One table row: its images and how a reading is scored."""

    name: str
    measure: str  # a key of MEASURES
    cases: list[Case]


def has_digit(text: str) -> bool:
    return any(char.isdigit() for char in text)


DIGITS_EXACT = "digits read exactly"  # anything else in a reading left out (real sets' labels)
MEASURES: dict[str, Callable[[str, str], bool]] = {
    "read exactly": lambda text, truth: text == truth,
    DIGITS_EXACT: lambda text, truth: digits_of(text) == truth,
    "produce any digit (lower is better)": lambda text, _: has_digit(text),
    "empty or rejected": lambda text, _: not has_digit(text),
}


# The page layouts read, each with its measure.
LAYOUT_MEASURES = {
    **dict.fromkeys(DIGIT_LAYOUTS, "read exactly"),
    "letters": "produce any digit (lower is better)",
    **dict.fromkeys(("blank", "noise", "scribble"), "empty or rejected"),
}


def tesseract_text(output: str) -> str:
    """Tesseract's output as a reading: spaces removed, empty lines dropped, line breaks kept."""
    lines = ("".join(line.split()) for line in output.splitlines())
    return "\n".join(line for line in lines if line)


def tesseract(image: np.ndarray) -> str:
    """Tesseract 5's digits in an image, read as a block of text (``--psm 6``): on single digits
    and lines of validation images it read at least as many exactly as ``--psm 7`` (one line)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    command = ["tesseract", "stdin", "stdout", "--psm", "6"]
    command += ["-c", "tessedit_char_whitelist=0123456789"]
    result = subprocess.run(
        command,
        input=buffer.getvalue(),
        capture_output=True,
        check=True,
        timeout=120,
        env={**os.environ, "OMP_THREAD_LIMIT": "1"},
    )
    return tesseract_text(result.stdout.decode())


def tesseract_reader() -> Reader:
    if shutil.which("tesseract") is None:
        raise SystemExit("tesseract not found: install Tesseract 5 (apt-get install tesseract-ocr)")
    return tesseract


def recognizer_reader(reader: str) -> Callable[[], Reader]:
    """``Recognizer.read`` of the shipped models with one of its readers, on one thread."""

    def make() -> Reader:
        recognizer = Recognizer.load("default", threads=1)
        return lambda image: recognizer.read(image, reader=reader).text

    return make


# "digits" is the connected-component reader that was the only one before pages were read.
READERS: dict[str, Callable[[], Reader]] = {
    **{name: recognizer_reader(name) for name in RECOGNIZER_READERS},
    "tesseract": tesseract_reader,
}


def as_mnist(images8: np.ndarray) -> np.ndarray:
    """scikit-learn's 8×8 digits (ink 0..16) as MNIST-like uint8 28×28 images: smoothly
    enlarged to 20×20 and centred, white on black."""
    out = np.zeros((len(images8), 28, 28), dtype=np.uint8)
    for image, target in zip(images8, out, strict=True):
        big = cv2.resize(image.astype(np.float32) / 16, (20, 20), interpolation=cv2.INTER_CUBIC)
        target[4:24, 4:24] = np.round(np.clip(big, 0, 1) * 255)
    return out


def sklearn_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Half of scikit-learn's digits as MNIST-like images: the first half for validation, the
    second for test."""
    digits = load_digits()
    images, labels = as_mnist(digits.images), digits.target.astype(np.uint8)
    half = len(images) // 2
    part = slice(None, half) if split == "validation" else slice(half, None)
    return images[part], labels[part]


def mnist_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST digits of a split: validation (the last training images) or test."""
    data = load_dataset("mnist", progress=False)
    if split == "test":
        return data.test_images, data.test_labels
    _, _, images, labels = split_validation(
        data.train_images, data.train_labels, TrainConfig.val_size
    )
    return images, labels


def stream(name: str, seed: int) -> np.random.Generator:
    """The random generator of one row: its own stream for each row name and seed."""
    return np.random.default_rng([seed, *name.encode()])


def pages(layout: str, digits: tuple[np.ndarray, np.ndarray], count: int, seed: int, split: str):
    """``count`` pages of ``layout`` written with the split's digits in the split's style."""
    return written_pages(layout, (layout,), digits, count, seed, split)


def ballpoint_pages(digits: tuple[np.ndarray, np.ndarray], count: int, seed: int, split: str):
    """``count`` pages of the digit layouts in turn, in the split's style but for its pens,
    ``FINE_PENS[split]``."""
    style = page_style(split)
    style = replace(style, hand=replace(style.hand, pen=FINE_PENS[split]))
    return written_pages("ballpoint", DIGIT_LAYOUTS, digits, count, seed, style)


def written_pages(
    name: str,
    layouts: tuple[str, ...],
    digits: tuple[np.ndarray, np.ndarray],
    count: int,
    seed: int,
    style: str | PageStyle,
) -> list[Case]:
    """``count`` pages of ``layouts`` in turn in ``style``, seeded by the row's ``name``."""
    seeds = stream(name, seed).integers(0, 2**32, count)
    samples = (
        page_sample(layouts[i % len(layouts)], *digits, int(s), style) for i, s in enumerate(seeds)
    )
    return [Case(sample.image, sample.text) for sample in tqdm(samples, name, count)]


def singles(
    digits: tuple[np.ndarray, np.ndarray], count: int, rng: np.random.Generator, style: Style
):
    """``count`` random digits, each rendered alone as a user's image."""
    images, labels = digits
    chosen = rng.choice(len(images), count, replace=count > len(images))
    return [
        Case(np.asarray(user_digit_image(images[i], rng, style)), str(labels[i])) for i in chosen
    ]


def lines(digits: tuple[np.ndarray, np.ndarray], count: int, seed: int, split: str):
    """``count`` lines of 3-8 digits from the page generator's line machinery, in the split's
    style: 28-64 px high, varied gaps, slant and pens, maybe in a form field or on ruled paper.
    Lines it makes without a digit (for training a line reader) are left out."""
    style = page_style(split)
    style = replace(style, hand=replace(style.hand, digits=(3, 8)))
    written = (line for line in line_samples(*digits, 10 * count, seed, style) if line.text)
    return [Case(line.image, line.text) for line in itertools.islice(written, count)]


def tasks(split: str, count: int, seed: int) -> list[Task]:
    """Every row's images: ``count`` of each, the same for every reader."""
    mnist, real = mnist_digits(split), sklearn_digits(split)
    made = [
        Task(layout, measure, pages(layout, mnist, count, seed, split))
        for layout, measure in LAYOUT_MEASURES.items()
    ]
    name = "single MNIST digits, user-style"
    made.append(Task(name, "read exactly", singles(mnist, count, stream(name, seed), Style())))
    name = "ballpoint: digit layouts in turn"
    made.append(Task(name, "read exactly", ballpoint_pages(mnist, count, seed, split)))
    name = "ballpoint: single MNIST digits, user-style"
    cases = singles(mnist, count, stream(name, seed), Style(stroke=FINE_PENS[split]))
    made.append(Task(name, "read exactly", cases))
    name = "scikit-learn digits, single"
    cases = singles(real, count, stream(name, seed), SKLEARN_STYLE)
    made.append(Task(name, "read exactly", cases))
    name = "scikit-learn digits, lines of 3-8"
    seed_of_lines = int(stream(name, seed).integers(0, 2**32))
    made.append(Task(name, "read exactly", lines(real, count, seed_of_lines, split)))
    return made


def score(reader: Reader, task: Task) -> tuple[float, float]:
    """The share of the task's images meeting its measure, and the mean milliseconds per image."""
    met, seconds = 0, 0.0
    for case in task.cases:
        start = time.perf_counter()
        text = reader(case.image)
        seconds += time.perf_counter() - start
        met += MEASURES[task.measure](text, case.truth)
    return met / len(task.cases), 1000 * seconds / len(task.cases)


def table(readers: dict[str, Reader], made: list[Task]) -> str:
    """The markdown table: per row, each reader's share, then each reader's milliseconds."""
    results = {
        (name, task.name): score(reader, task)
        for name, reader in readers.items()
        for task in tqdm(made, name)
    }
    header = ["images", "measure", *readers, *(f"ms/image {name}" for name in readers)]
    body = [
        [
            f"{task.name} ({len(task.cases)})",
            task.measure,
            *(f"{results[name, task.name][0]:.1%}" for name in readers),
            *(f"{results[name, task.name][1]:.0f}" for name in readers),
        ]
        for task in made
    ]
    return markdown_table(header, body)


def real_rows(count: int, finetuned: Path | None, folder: Path) -> list[Task]:
    """The real sets' rows (``real_sets.real_tasks``; ``count`` CVL digits), and with a
    fine-tuned run ORAND-CAR-A's held-out fifth, which it did not learn."""
    from real_sets import SETS, real_tasks

    made = real_tasks(REAL_SETS, list(SETS), count, DIGITS_EXACT)
    if finetuned:
        from finetune_strings import split_orand

        held_out = split_orand(orand_folder(REAL_SETS), folder / "orand", 0).test
        cases = [
            Case(np.asarray(Image.open(path).convert("L")), truth)
            for path, truth in string_labels(held_out).items()
        ]
        made.append(Task("ORAND-CAR-A held-out fifth (not fine-tuned on)", DIGITS_EXACT, cases))
    return made


def reader_names(value: str) -> list[str]:
    """The ``--readers`` list: known names, comma-separated."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in READERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown reader(s) {', '.join(unknown) or '(none given)'}: "
            f"expected some of {', '.join(READERS)}"
        )
    return names


def positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, not {value!r}")
    return int(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=positive, default=300, help="images per row")
    parser.add_argument("--split", choices=SPLITS, default="validation")
    parser.add_argument("--readers", type=reader_names, default="auto,pages,digits,tesseract")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", action="store_true", help="rows of the real handwriting sets")
    parser.add_argument("--previous", help="also read with the models shipped at this revision")
    parser.add_argument("--finetuned", type=Path, help="a train-lines --strings run of ORAND's 80%")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()

    readers = {name: READERS[name]() for name in args.readers}
    made = tasks(args.split, args.pages, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        if args.real:
            made += real_rows(args.pages, args.finetuned, Path(folder))
        if args.previous:
            from real_sets import previous_readers

            readers |= previous_readers(args.previous, args.readers, Path(folder))
        if args.finetuned:
            tuned = Recognizer.load(args.finetuned, threads=1)
            readers[f"auto --model {args.finetuned.name}"] = lambda image: tuned.read(image).text
        text = (
            f"Reading pages made from the MNIST **{args.split}** digits in the {args.split} "
            f"style, and from scikit-learn's digits ({args.split} half)"
            + (", and real handwriting (ORAND-CAR-A, CVL valid)" if args.real else "")
            + f"; seed {args.seed}, one thread per reader; {machine()}.\n\n{table(readers, made)}"
        )
    print(text)
    if args.write_readme:
        write_into_readme("reading" if args.split == "validation" else "reading-test", text)


if __name__ == "__main__":
    main()
