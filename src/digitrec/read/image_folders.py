"""Your own images as a dataset: folders with one subfolder per class, named by the class
(``0/`` … ``9/``), the layout of Keras's ``image_dataset_from_directory`` and torchvision's
``ImageFolder``. Subfolders of a class folder are read too; hidden files and folders (names
starting with '.') are ignored.

Each image is read exactly as ``digitrec predict --single`` reads it (``load_image``, then
``find_digits(single=True)``), so that a model learns from what it will be shown. A file that
cannot be read (not an image, corrupt, blank) is skipped and listed; a folder laid out wrongly
(an unknown class name, an empty class, no images at all) is a ``DataError`` before anything is
decoded. Importing this module needs no TensorFlow nor scikit-learn (fine-tuning splits the
images: ``finetune.stratified_split``).

A folder of written numbers (``string_labels``) holds images and a ``labels.csv`` listing each
image with its digits: what ``digitrec evaluate --strings`` scores and ``digitrec train-lines
--strings`` fine-tunes the line reader on.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitrec.data import DATASETS
from digitrec.errors import DataError, ImageError
from digitrec.read.imaging import find_digits, load_image

CLASS_NAMES = DATASETS["mnist"].class_names  # the class folders' names: the digits
# Beside the class folders, a folder of written numbers: images and their text in a labels file
# (what ``serve --collect`` stores for whole lines); training on single digits passes it over.
LINES_FOLDER = "lines"
LINE_LABELS = "labels.csv"
STRING_LABELS = LINE_LABELS  # a folder of written numbers lists them in this file
STRING_COLUMNS = ("file", "text")  # its columns read (others are ignored)
SKIPPED_SHOWN = 5  # skipped files named in a summary; the rest are counted


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of the dataset, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def counted(number: int, noun: str) -> str:
    """``1 file``, ``2 files``: a count and its noun, singular or plural."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def skipped_lines(skipped: Sequence[object], shown: int = SKIPPED_SHOWN) -> list[str]:
    """The skipped files (each as "path: reason"), one line each for the first ``shown`` and
    one more line for how many others there are."""
    lines = [str(entry) for entry in skipped[:shown]]
    if len(skipped) > shown:
        lines.append(f"and {len(skipped) - shown:,} more")
    return lines


@dataclass
class ImageFolderData:
    """Images read from class folders: ``images`` float32 (N, 28, 28) in [0, 1], white on
    black (each what the recognizer is given for its file), ``labels`` uint8 (N,) (indices
    into ``CLASS_NAMES``), the ``files`` they came from, and the files ``skipped``."""

    images: np.ndarray
    labels: np.ndarray
    files: list[Path]
    skipped: list[SkippedFile] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def uint8_images(self) -> np.ndarray:
        """The images as MNIST stores its own (uint8, 0 to 255), to train on beside MNIST."""
        return np.rint(self.images * 255).astype(np.uint8)

    def class_counts(self) -> dict[str, int]:
        """How many images each class present has, in class order."""
        counts = np.bincount(self.labels, minlength=len(CLASS_NAMES))
        return {name: int(n) for name, n in zip(CLASS_NAMES, counts, strict=True) if n}

    def subset(self, indices: np.ndarray) -> ImageFolderData:
        """The images at ``indices``; the skipped files are not carried over."""
        return ImageFolderData(
            self.images[indices], self.labels[indices], [self.files[i] for i in indices]
        )

    def summary(self) -> str:
        """One line for the user: what was read, and how many files were skipped."""
        counts = ", ".join(f"{name}: {n}" for name, n in self.class_counts().items())
        skipped = f"; {counted(len(self.skipped), 'file')} skipped" if self.skipped else ""
        return f"{len(self)} images ({counts}){skipped}"


def read_image_folders(folders: str | Path | Sequence[str | Path]) -> ImageFolderData:
    """Read one or more class folders into one dataset (files in path order within each)."""
    if isinstance(folders, str | Path):
        folders = [folders]
    if not folders:
        raise DataError("no image folder given")
    layouts = [class_files(Path(folder)) for folder in folders]  # every layout checked first
    parts = [
        read_classes(Path(folder), layout) for folder, layout in zip(folders, layouts, strict=True)
    ]
    return ImageFolderData(
        images=np.concatenate([part.images for part in parts]),
        labels=np.concatenate([part.labels for part in parts]),
        files=[path for part in parts for path in part.files],
        skipped=[skip for part in parts for skip in part.skipped],
    )


def class_files(root: Path) -> dict[str, list[Path]]:
    """The files of each class folder of ``root``, checked: class folders named by a class,
    none empty, at least one. Files at the top level are listed under ``""`` (to be skipped)."""
    if not root.is_dir():
        reason = "is a file, not a folder" if root.exists() else "no such folder"
        raise DataError(f"{root}: {reason}")
    found: dict[str, list[Path]] = {"": []}
    for entry in sorted(path for path in root.iterdir() if not path.name.startswith(".")):
        if entry.name == LINES_FOLDER and (entry / LINE_LABELS).is_file():
            continue  # written numbers, not single digits
        if entry.is_dir():
            if entry.name not in CLASS_NAMES:
                raise DataError(
                    f"{entry}: not a class folder: class folders are named "
                    f"{', '.join(CLASS_NAMES)} (one per digit, holding images of it)"
                )
            found[entry.name] = files_under(entry)
            if not found[entry.name]:
                raise DataError(f"{entry}: the class folder is empty")
        else:
            found[""].append(entry)
    if len(found) == 1:
        loose = f" (it holds {len(found[''])} files outside them)" if found[""] else ""
        raise DataError(
            f"{root}: no images: expected subfolders {', '.join(CLASS_NAMES)}, each holding "
            f"images of that digit{loose}"
        )
    return found


def files_under(folder: Path) -> list[Path]:
    """The files under ``folder`` and its visible subfolders, in path order."""
    files = []
    for directory, subfolders, names in os.walk(folder):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        files += [Path(directory, name) for name in sorted(names) if not name.startswith(".")]
    return files


def read_classes(root: Path, layout: dict[str, list[Path]]) -> ImageFolderData:
    """Read every file of the class folders; a class with no readable image is a DataError."""
    images, labels, files = [], [], []
    skipped = [SkippedFile(path, "not in a class folder") for path in layout[""]]
    for name in (name for name in CLASS_NAMES if name in layout):
        readable = 0
        for path in layout[name]:
            try:
                images.append(model_input(path))
            except ImageError as error:
                skipped.append(SkippedFile(path, str(error)))
                continue
            labels.append(CLASS_NAMES.index(name))
            files.append(path)
            readable += 1
        if not readable:
            raise DataError(
                f"{root / name}: no readable image among its {len(layout[name])} files "
                f"(such as {skipped[-1].path.name}: {skipped[-1].reason})"
            )
    return ImageFolderData(
        np.stack(images).astype(np.float32), np.array(labels, dtype=np.uint8), files, skipped
    )


def model_input(path: Path) -> np.ndarray:
    """The 28×28 image the recognizer is given for ``path`` read as one digit (as
    ``digitrec predict --single`` reads it); ``ImageError`` when it cannot be read or is blank."""
    crops = find_digits(load_image(path), single=True)
    if not crops:
        raise ImageError("no ink found: the image is blank")
    return crops[0].image


# --- written numbers ---------------------------------------------------------------------------


def string_labels(folder: Path) -> dict[Path, str]:
    """Each image listed in ``folder/labels.csv`` (columns ``file``, a path relative to
    ``folder``, and ``text``, its digits; other columns ignored) with its digits, spaces
    removed. A missing or malformed list, a listed file that is missing, or a text that is not
    digits is a ``DataError`` before any image is read."""
    labels = folder / STRING_LABELS
    layout = (
        f"--strings needs a folder holding the images and a {STRING_LABELS} with the columns "
        f"{', '.join(STRING_COLUMNS)} (each image's file name and the digits written in it)"
    )
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder: {layout}")
    if not labels.is_file():
        raise DataError(f"{labels}: no such file: {layout}")
    try:
        with labels.open(newline="", encoding="utf-8-sig") as stream:
            table = csv.DictReader(stream)
            rows, columns = list(table), table.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{labels}: cannot be read as CSV ({error}): {layout}") from None
    missing_columns = [name for name in STRING_COLUMNS if name not in columns]
    if not rows:
        raise DataError(f"{labels}: lists no image: {layout}")
    if missing_columns:
        raise DataError(
            f"{labels}: no column {' or '.join(missing_columns)} (its columns: "
            f"{', '.join(map(str, columns))}): {layout}"
        )
    listed: dict[Path, str] = {}
    for line, row in enumerate(rows, start=2):
        path, text = folder / (row["file"] or ""), re.sub(r"\s+", "", row["text"] or "")
        if not row["file"]:
            raise DataError(f"{labels}, line {line}: no file name")
        if not text.isdigit() and text != "":
            raise DataError(f"{labels}, line {line}: text {row['text']!r} is not digits")
        if path in listed:
            raise DataError(f"{labels}, line {line}: {row['file']} is listed twice")
        listed[path] = text
    missing = [str(path) for path in listed if not path.is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if missing[3:] else "")
        raise DataError(f"{labels} lists files that are not there: {shown}")
    return listed
