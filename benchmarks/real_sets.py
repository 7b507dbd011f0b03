"""How the shipped models read real handwriting that no one here made: courtesy amounts cut from
real bank cheques (ORAND-CAR-A's training part, which the shipped models never trained on) and
single digits of 60 writers (CVL's validation part) as a user's crop, with Tesseract 5 beside
them in the same run, and the models shipped at an earlier revision (``--previous REV``: the
classifier, line model and crop line model files of that git revision, read with today's code)
for comparison.

    python benchmarks/real_sets.py [--data ../shared/realdigits] [--cvl 7000]
        [--sets orand,cvl,cvl-lines] [--readers auto,pages,digits,tesseract]
        [--lines documents] [--previous REV]
        [--write-readme]

A number is read exactly when the digits read, in order, are its digits: the cheques' labels
hold digits only (their separators and end marks are in the images but not in the labels), so
spaces, line breaks and anything not a digit in a reading are left out before comparing. A CVL
digit (28×28, dark ink on white) is given as a user would crop it: enlarged three times onto a
margin of white paper. `--write-readme` fills the `real_sets` block of docs/benchmarks/real-sets.md.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import REAL_SETS, machine, write_into_readme
from PIL import Image
from reading import READERS, Case, Task, reader_names, table

from digitrec.read.line_reader import LineReader
from digitrec.read.page_reader import PagePredictor
from digitrec.read.recognizer import Recognizer
from digitrec.realdigits import load_cvl
from digitrec.synth.documents import writer_lines
from digitrec.training.evaluate import digits_of

ROOT = Path(__file__).resolve().parent.parent
DATA = REAL_SETS
ASSETS = "src/digitrec/assets"
SETS = ("orand", "cvl", "cvl-lines")  # the cheques, CVL's single digits, lines of them
LINES_SEED = 121  # the seed of the CVL lines (seeds up to 120 chose settings)
SCALE, MARGIN = 3, 24  # a CVL digit enlarged this many times, on this much paper (pixels)


def orand_cheques(root: Path) -> list[Case]:
    """ORAND-CAR-A's training amounts (grey JPEGs) and their digits."""
    folder = root / "orand_car_a"
    with (folder / "labels.csv").open(newline="") as labels:
        rows = list(csv.DictReader(labels))
    return [
        Case(np.asarray(Image.open(folder / "train" / row["file"]).convert("L")), row["text"])
        for row in rows
    ]


def cvl_digits(root: Path, split: str, count: int) -> list[Case]:
    """The first ``count`` digits of a CVL part as a user's crops: enlarged onto paper."""
    part = np.load(root / "cvl" / f"cvl_{split}.npz")
    cases = []
    for image, label in zip(part["x"][:count], part["y"][:count], strict=True):
        big = Image.fromarray(image).resize((28 * SCALE,) * 2, Image.Resampling.BICUBIC)
        crop = np.full((28 * SCALE + 2 * MARGIN,) * 2, 255, np.uint8)
        crop[MARGIN:-MARGIN, MARGIN:-MARGIN] = np.asarray(big)
        cases.append(Case(crop, str(label)))
    return cases


def cvl_lines(root: Path, count: int) -> list[Case]:
    """``count`` lines of 3-10 digits of one CVL valid writer each, written by the page
    generator in its test style (``synth.documents.writer_lines``)."""
    part = load_cvl("valid", root)
    lines = writer_lines(part.images, part.labels, part.writers, count, LINES_SEED, style="test")
    return [Case(line.image, line.text) for line in lines]


def digits_only(reader):
    """A reader whose text keeps only the digits read."""
    return lambda image: digits_of(reader(image))


def shipped_at(revision: str, folder: Path) -> tuple[Path, Path, Path | None]:
    """The classifier, the line model and, where that revision had one, the line model that
    reads crops of one number, shipped at a git ``revision``, written into ``folder``."""
    classifier, lines, crops = (
        asset_at(revision, name, folder)
        for name in ("default.onnx", "lines.onnx", "documents.onnx")
    )
    if classifier is None or lines is None:
        raise SystemExit(f"no {ASSETS}/default.onnx and lines.onnx at {revision}")
    return classifier, lines, crops


def asset_at(revision: str, name: str, folder: Path) -> Path | None:
    """The shipped file ``name`` at a git ``revision``, written into ``folder``; None if absent."""
    content = subprocess.run(
        ["git", "show", f"{revision}:{ASSETS}/{name}"], cwd=ROOT, capture_output=True
    )
    if content.returncode:
        return None
    (folder / name).write_bytes(content.stdout)
    return folder / name


def recognizer_readers(
    recognizer: Recognizer, names: list[str], suffix: str
) -> dict[str, Callable]:
    """The recognizer's readers among ``names``, each named with ``suffix``."""
    return {
        f"{name} {suffix}": (lambda r: lambda image: recognizer.read(image, reader=r).text)(name)
        for name in names
        if name != "tesseract"
    }


def previous_readers(revision: str, names: list[str], folder: Path) -> dict[str, Callable]:
    """The recognizer readers among ``names`` with the models shipped at ``revision`` (its crop
    model reading crops of one number where it had one)."""
    classifier, lines, crops = shipped_at(revision, folder)
    recognizer = Recognizer.load(classifier, threads=1, lines=lines)
    if crops is not None and recognizer.pages is not None:
        recognizer.pages.crops = PagePredictor(LineReader.load(crops, 1))
    return recognizer_readers(recognizer, names, f"@{revision}")


def real_tasks(data: Path, sets: list[str], cvl: int, measure: str = "read exactly") -> list[Task]:
    """The rows asked for: ``orand`` (the cheques), ``cvl`` (CVL valid's single digits) and
    ``cvl-lines`` (lines of them, as many lines as ``cvl`` / 7), scored by ``measure``."""
    makers = {
        "orand": lambda: Task(
            "ORAND-CAR-A cheque amounts (train part)", measure, orand_cheques(data)
        ),
        "cvl": lambda: Task(
            "CVL single digits, 60 writers (valid part)", measure, cvl_digits(data, "valid", cvl)
        ),
        "cvl-lines": lambda: Task(
            "CVL lines of 3-10 digits, one writer each (valid part, test style)",
            measure,
            cvl_lines(data, max(1, cvl // 7)),
        ),
    }
    return [makers[name]() for name in sets]


def set_names(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names or set(names) - set(SETS):
        raise argparse.ArgumentTypeError(f"expected some of {', '.join(SETS)}, not {value!r}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the realdigits folder")
    parser.add_argument("--cvl", type=int, default=7000, help="CVL validation digits read")
    parser.add_argument("--sets", type=set_names, default=",".join(SETS), help="rows to read")
    parser.add_argument("--readers", type=reader_names, default="auto,pages,digits,tesseract")
    parser.add_argument("--previous", help="also read with the models shipped at this revision")
    parser.add_argument("--lines", help="also read with this line model (e.g. documents)")
    parser.add_argument("--write-readme", action="store_true", help="fill the docs page's block")
    args = parser.parse_args()
    if not (args.data / "orand_car_a" / "labels.csv").is_file():
        raise SystemExit(f"{args.data}: no realdigits folder (orand_car_a/, cvl/) there")
    made = real_tasks(args.data, args.sets, args.cvl)
    with tempfile.TemporaryDirectory() as folder:
        readers = {name: READERS[name]() for name in args.readers}
        if args.lines:
            recognizer = Recognizer.load(threads=1, lines=args.lines)
            readers |= recognizer_readers(recognizer, args.readers, f"--lines {args.lines}")
        if args.previous:
            readers |= previous_readers(args.previous, args.readers, Path(folder))
        readers = {name: digits_only(reader) for name, reader in readers.items()}
        shipped = "the shipped models" + (
            f" and those shipped at {args.previous} (named @{args.previous})"
            if args.previous
            else ""
        )
        text = "\n\n".join(
            [
                f"{machine()}; {shipped}, one thread; digits compared, nothing else.",
                table(readers, made),
            ]
        )
    print(text)
    if args.write_readme:
        write_into_readme("real_sets", text)


if __name__ == "__main__":
    main()
