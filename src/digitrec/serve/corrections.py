"""Users' corrections, collected as training data (``digitrec serve --collect DIR``).

A correction is an image, the reader options it was read with, and the text it really shows,
written as a reading's text is: lines separated by line breaks, spaces between groups of digits.
The image is read again as recognition read it (the same recognizer and options give the same
reading), and the correction is cut, line by line, with the boxes of that reading:

- a line whose corrected digits are as many as the digits read on it gives each digit's 28×28
  image as the single-digit classifier takes it, stored as ``DIR/<digit>/<unique name>.png``:
  the class-folder layout ``digitrec train --images DIR`` reads (``digitrec.read.image_folders``);
- a line the page reader read, or whose corrected digits are not as many as those read on it,
  is stored whole: its box with a margin of paper, grey, as ``DIR/lines/<unique name>.png``,
  listed with its text in ``DIR/lines/labels.csv`` (columns ``file,text``): images of written
  numbers with their text, the layout the line model's tools read.

A correction with another number of lines than the reading's is refused (422): a line image
holds one line's text, so the lines must pair up.

The 28×28 images are what the classifier saw of each digit it read. Read back as one digit,
such an image comes out as itself to within a re-centring by a pixel and a rescaling of its
brightness, while a plain crop of the digit comes out further off, or blank (it is read without
the ink statistics of the rest of the image). For a digit the page reader read, the
classifier's segmentation of the region around its box is used: the piece of ink found there
that lies within the box is stored (``page_digit``); a digit for which there is none (its ink
touches a neighbour's, a box line crosses it) is left out; its line is stored whole, as every
line the page reader read is.

Each file appears complete under its final name or not at all (``atomic_path``), a
correction's files and rows are all stored or none, and the collection is held to a number of
files and to the disk space they take (507 when full); the limit holds across threads and
across the service's worker processes (an advisory lock on the folder; on Windows, which has
none, across threads only). The usage is kept as a running tally in a hidden file beside the
folders, so that a correction does not list the whole collection; it is counted again from the
files whenever a folder or the labels file has changed since the tally was saved (as their
modification times tell, to within the file system's time resolution).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from starlette.exceptions import HTTPException

from digitrec.files import atomic_path
from digitrec.read.boxes import Box, area, overlap
from digitrec.read.decoding import GrayImage, decode_image
from digitrec.read.image_folders import CLASS_NAMES, LINE_LABELS, LINES_FOLDER, files_under
from digitrec.read.imaging import MAX_PIXELS, find_digits
from digitrec.read.line_finder import REGION_MARGIN
from digitrec.read.options import ReadOptions
from digitrec.read.page_reader import PAGE_SIDE
from digitrec.read.recognizer import Recognizer
from digitrec.read.results import Reading
from digitrec.serve.schemas import png_bytes
from digitrec.serve.settings import MEGABYTE, ServeSettings

DIGITS_FIELD = "digits"
USAGE_FILE = ".usage.json"  # the running tally; hidden, so not read as a training image
LINE_COLUMNS = ("file", "text")
# A piece of ink the classifier finds is a digit the page reader read if this much of the piece
# lies within the digit's box and it covers this much of the box (the page reader's boxes are
# looser). On 150 generated validation pages (photo, multiline, gaps, touching, comb; seeds 21
# to 50), 730 of the 1,654 digits read are stored, and the classifier reads 99.3% of those as
# the page reader did; with 0.6 of the piece within, 1,117 and 94.8% (two digits in one piece).
PIECE_WITHIN = 0.85
DIGIT_COVERED = 0.4


@dataclass(frozen=True)
class Cut:
    """One image a correction stores: its label (a digit, or a line's text), the image (grey
    in [0, 1]) and its box in the pixels of the image corrected."""

    label: str
    image: np.ndarray
    box: Box


@dataclass
class Correction:
    """What a correction stores, and the text of the reading it was cut with."""

    read: str
    digits: list[Cut]
    lines: list[Cut]


@dataclass
class Stored:
    """The files a correction wrote, and the collection's files and disk use after."""

    digits: list[Path]
    lines: list[Path]
    usage: tuple[int, int]


@dataclass
class Collection:
    """Where corrections are stored, and how much the collection may hold."""

    root: Path
    max_files: int
    max_bytes: int
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def of(cls, settings: ServeSettings) -> Collection | None:
        """The collection ``settings`` ask for; None when corrections are not collected."""
        if settings.collect_dir is None:
            return None
        return cls(
            Path(settings.collect_dir), settings.collect_max_files, settings.collect_max_bytes
        )

    @property
    def labels_file(self) -> Path:
        return self.root / LINES_FOLDER / LINE_LABELS

    def folders(self) -> list[Path]:
        """The folders the collection stores files in: the class folders and the lines'."""
        return [self.root / name for name in (*CLASS_NAMES, LINES_FOLDER)]

    def usage(self) -> tuple[int, int]:
        """The files in the collection's folders and the disk space they take: the saved tally
        while the folders are as it found them, else counted from the files. Call it
        ``writing()``."""
        return self.saved_usage() or self.counted_usage()

    def counted_usage(self) -> tuple[int, int]:
        folders = [folder for folder in self.folders() if folder.is_dir()]
        sizes = [disk_use(path) for folder in folders for path in files_under(folder)]
        return len(sizes), sum(sizes)

    def saved_usage(self) -> tuple[int, int] | None:
        """The tally saved by the last correction; None if there is none, it is malformed, or a
        folder or the labels file has changed since (their modification times)."""
        try:
            tally = json.loads((self.root / USAGE_FILE).read_text())
            files, size, times = tally["files"], tally["bytes"], tally["folders"]
        except (OSError, ValueError, TypeError, KeyError):
            return None
        counts = (files, size)
        if times != self.folder_times() or not all(type(n) is int and n >= 0 for n in counts):
            return None
        return counts

    def save_usage(self, files: int, size: int) -> None:
        tally = {"files": files, "bytes": size, "folders": self.folder_times()}
        with atomic_path(self.root / USAGE_FILE) as tmp:
            tmp.write_text(json.dumps(tally))

    def folder_times(self) -> dict[str, int]:
        """The modification time (ns) of each folder, which adding or removing a file changes,
        and of the labels file, which a new row changes."""
        times = {}
        for path in (*self.folders(), self.labels_file):
            with suppress(FileNotFoundError):
                times[path.relative_to(self.root).as_posix()] = path.stat().st_mtime_ns
        return times

    def store(self, correction: Correction) -> Stored:
        """Store the correction's digits in their class folders and its lines in the lines
        folder with their rows in its labels file, all or none. 507 when they would not fit:
        checked at the files' own sizes before they are written, and at the disk space they
        take after."""
        digits = [(self.root / cut.label, png_bytes(cut.image)) for cut in correction.digits]
        lines = [(self.root / LINES_FOLDER, png_bytes(cut.image)) for cut in correction.lines]
        new_bytes = sum(len(data) for _, data in digits + lines)
        if not self.root.is_dir():  # a correction refused into an empty collection makes no folder
            self.check_room(0, 0, len(digits) + len(lines), new_bytes)
        with self.writing():
            files, size = self.usage()
            labels = LabelRows(self.labels_file)
            new_files = len(digits) + len(lines) + int(bool(lines) and not labels.existed)
            self.check_room(files, size, new_files, new_bytes)
            labels_use = disk_use(self.labels_file)
            written: list[Path] = []
            try:
                for folder, data in digits + lines:
                    written.append(self.write(folder, data))
                line_files = written[len(digits) :]
                rows = zip((path.name for path in line_files), correction.lines, strict=True)
                labels.append([(name, cut.label) for name, cut in rows])
                added = sum(map(disk_use, written)) + disk_use(self.labels_file) - labels_use
                self.check_room(files, size, new_files, added)
                self.save_usage(files + new_files, size + added)
            except BaseException:
                for path in written:
                    path.unlink(missing_ok=True)
                labels.undo()
                raise
        return Stored(written[: len(digits)], line_files, (files + new_files, size + added))

    def name_of(self, path: Path) -> str:
        """A stored file's name relative to the collection's folder, with '/' between parts."""
        return path.relative_to(self.root).as_posix()

    @staticmethod
    def write(folder: Path, data: bytes) -> Path:
        """A new PNG file holding ``data`` in ``folder``, under a name no other file gets."""
        final = folder / unique_name()
        with atomic_path(final, suffix=".png") as tmp:
            tmp.write_bytes(data)
        return final

    @contextmanager
    def writing(self) -> Iterator[None]:
        """The collection to one writer at a time: this process's threads, and the other
        worker processes of the service (an advisory lock on the folder, where there is one)."""
        with self.lock:
            self.root.mkdir(parents=True, exist_ok=True)
            with locked_folder(self.root):
                yield

    def check_room(self, files: int, size: int, new_files: int, new_bytes: int) -> None:
        """507 unless ``new_files`` of ``new_bytes`` fit beside ``files`` of ``size`` bytes."""
        if files + new_files <= self.max_files and size + new_bytes <= self.max_bytes:
            return
        raise HTTPException(
            507,
            f"the collection of corrections is full: it holds {files} files taking "
            f"{size / MEGABYTE:.2f} MB of disk, of at most {self.max_files} files, "
            f"{self.max_bytes / MEGABYTE:g} MB",
        )


class LabelRows:
    """The labels file of the lines folder, appended to and, on failure, put back as it was."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size_before: int | None = None  # None: nothing appended (yet)
        self.existed = path.exists()

    def append(self, rows: list[tuple[str, str]]) -> None:
        """Append ``rows`` (file, text), under the header if the file is new."""
        if not rows:
            return
        text = io.StringIO()
        if self.existed and not ends_a_line(self.path):
            text.write("\n")  # a last row someone left without its line break
        writer = csv.writer(text, lineterminator="\n")
        if not self.existed:
            writer.writerow(LINE_COLUMNS)
        writer.writerows(rows)
        self.size_before = self.path.stat().st_size if self.existed else 0
        with self.path.open("a", encoding="utf-8", newline="") as labels:
            labels.write(text.getvalue())

    def undo(self) -> None:
        """Remove what ``append`` added: the new file, or the rows added to the old one."""
        if self.size_before is None:
            return
        if self.existed:
            os.truncate(self.path, self.size_before)
        else:
            self.path.unlink(missing_ok=True)


def ends_a_line(path: Path) -> bool:
    """Whether a file is empty or ends with a line break."""
    with path.open("rb") as file:
        if file.seek(0, os.SEEK_END) == 0:
            return True
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\n"


@contextmanager
def locked_folder(folder: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on a folder (waiting for it); none on Windows."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks
        yield
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def disk_use(path: Path) -> int:
    """The disk space a file takes, in whole blocks (its size where the system does not say);
    0 for a file that is not there."""
    try:
        status = path.stat()
    except FileNotFoundError:  # removed since it was listed, or not written yet
        return 0
    blocks = getattr(status, "st_blocks", None)
    return status.st_size if blocks is None else blocks * 512


def unique_name() -> str:
    """A file name no other correction gets, in any process: the time, then random hex."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:16]}.png"


def corrected_lines(text: str) -> list[str]:
    """The corrected text's lines, top to bottom, each its groups of digits separated by one
    space (blank lines left out); 422 unless it holds only digits, spaces and line breaks."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines or not all(re.fullmatch(r"[0-9 ]+", line) for line in lines):
        shown = text.strip()
        shown = f"{shown[:20]!r}{'...' if len(shown) > 20 else ''}"
        raise HTTPException(
            422,
            f"'{DIGITS_FIELD}' must be the digits the image shows, a line of them for each line "
            f"read (e.g. 4096, or 17 25 and 300 on two lines), not {shown}",
        )
    return lines


def checked_line_count(reading: Reading, lines: list[str]) -> None:
    """422 unless the correction has as many lines as the reading (and it read some)."""
    if not reading.lines:
        raise HTTPException(
            422,
            "no digits were read in the image, so there are no lines or digits to cut the "
            "correction from: nothing stored",
        )
    if len(lines) != len(reading.lines):
        read, given = len(reading.lines), len(lines)
        raise HTTPException(
            422,
            f"the image was read as {read} line{'' if read == 1 else 's'} but the correction "
            f"gives {given}: correct it line by line, one line of digits for each line read, "
            "top to bottom, separated by line breaks; nothing stored",
        )


def cut_correction(
    reading: Reading, lines: list[str], data: bytes, max_pixels: int = MAX_PIXELS
) -> Correction:
    """The digits and lines a correction stores, cut from the image ``data`` with the boxes of
    its ``reading`` (see the module's docstring)."""
    checked_line_count(reading, lines)
    by_page_reader = not reading.normalized
    seen = iter(reading.normalized)  # the classifier's 28×28 image of each digit it read
    page: GrayImage | None = None  # decoded once a line or a page reader's digit needs it
    digits: list[Cut] = []
    whole: list[Cut] = []
    for line, text in zip(reading.lines, lines, strict=True):
        labels = text.replace(" ", "")
        inputs = [next(seen, None) for _ in line.digits]
        same_count = len(labels) == len(line.digits)
        if by_page_reader or not same_count:
            page = page or decode_image(data, max_pixels, max_side=PAGE_SIDE)
            whole.append(Cut(text, page.pixels[slices(widened(line.box, page))], line.box))
        if not same_count:
            continue
        for label, digit, image in zip(labels, line.digits, inputs, strict=True):
            if by_page_reader:
                image = page_digit(page, digit.box)
            if image is not None:
                digits.append(Cut(label, image, digit.box))
    return Correction(reading.text, digits, whole)


def widened(box: Box, page: GrayImage) -> Box:
    """``box`` (the image's pixels) in the decoded page's pixels, with a margin of paper of
    ``REGION_MARGIN`` of its height around it as far as the page goes."""
    factor = page.size[0] / page.pixels.shape[0]
    x0, y0, x1, y1 = (value / factor for value in box)
    margin = REGION_MARGIN * (y1 - y0) + 1
    rows, cols = page.pixels.shape
    return (
        max(0, int(x0 - margin)),
        max(0, int(y0 - margin)),
        min(cols, math.ceil(x1 + margin)),
        min(rows, math.ceil(y1 + margin)),
    )


def slices(box: Box) -> tuple[slice, slice]:
    return slice(box[1], box[3]), slice(box[0], box[2])


def page_digit(page: GrayImage, box: Box) -> np.ndarray | None:
    """The classifier's 28×28 image of a digit the page reader read at ``box``: of the pieces of
    ink the classifier finds in the region around the box, the one that lies mostly within it
    and covers enough of it (``PIECE_WITHIN``, ``DIGIT_COVERED``); None if none does."""
    region = widened(box, page)
    factor = page.size[0] / page.pixels.shape[0]
    fitting = []
    for crop in find_digits(page.pixels[slices(region)]):
        piece = moved(crop.box, region[:2], factor)
        common = overlap(box, piece)
        if common >= PIECE_WITHIN * area(piece) and common >= DIGIT_COVERED * area(box):
            fitting.append((common, crop.image))
    return max(fitting, key=lambda fit: fit[0])[1] if fitting else None


def moved(box: Box, origin: tuple[int, int], factor: float) -> Box:
    """A box in a region's pixels as a box in the image's: ``origin`` (x, y) is the region's
    corner in the decoded page's pixels, ``factor`` the scale from those to the image's."""
    x, y = origin
    x0, y0, x1, y1 = box
    return (
        round((x0 + x) * factor),
        round((y0 + y) * factor),
        round((x1 + x) * factor),
        round((y1 + y) * factor),
    )


def store_correction(
    collection: Collection,
    recognizer: Recognizer,
    data: bytes,
    text: str,
    options: ReadOptions,
) -> dict:
    """Read the image as recognition does with these options, cut the correction with the
    reading's boxes and store it; 422 when the lines do not pair up. CPU-bound, so it runs in
    a worker thread."""
    lines = corrected_lines(text)
    reading = recognizer.read(data, options=options)
    correction = cut_correction(reading, lines, data, options.max_pixels)
    stored = collection.store(correction)
    files, size = stored.usage
    return {
        "read": correction.read,
        "stored": [
            {"label": cut.label, "file": collection.name_of(path), "box": cut.box}
            for cut, path in zip(correction.digits, stored.digits, strict=True)
        ],
        "lines": [
            {"text": cut.label, "file": collection.name_of(path), "box": cut.box}
            for cut, path in zip(correction.lines, stored.lines, strict=True)
        ],
        "collection": {
            "files": files,
            "bytes": size,
            "max_files": collection.max_files,
            "max_bytes": collection.max_bytes,
        },
    }
