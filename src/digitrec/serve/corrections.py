"""Users' corrections, collected as training images (``digitrec serve --collect DIR``).

A correction is an image and the digits it really shows. The image is read as for recognition;
when as many digits are found in it as the correction gives, each digit's 28×28 normalized image
(what the model saw) is stored as ``DIR/<digit>/<unique name>.png``: the class-folder layout
``digitrec train --images DIR`` reads (``digitrec.image_folders``).

The normalized image is stored rather than the digit's crop of the original: read back as one
digit, it comes out as itself to within a re-centring by a pixel and a rescaling of its
brightness (no stored form comes out exactly the same: the reading normalizes again), while the
crop comes out further off, or blank, since it is read without the rest of the image (the ink
statistics and background of a small, mostly inked box). It also keeps no more of the user's
picture than the digit, in a few hundred bytes.

Each file appears complete under its final name or not at all (``atomic_path``), a correction's
digits are all stored or none, and the collection is held to a number of files and to the disk
space they take (507 when full); the limit holds across threads and across the service's worker
processes (an advisory lock on the folder; on Windows, which has none, across threads only).
The usage is kept as a running tally in a hidden file beside the class folders, so that a
correction does not list the whole collection; it is counted again from the files whenever a
class folder has changed since the tally was saved (files added to it or removed by others, as
its modification time tells, to within the file system's time resolution).
"""

from __future__ import annotations

import json
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
from digitrec.image_folders import CLASS_NAMES, files_under
from digitrec.imaging import MAX_PIXELS, image_digits
from digitrec.serve.schemas import png_bytes
from digitrec.serve.settings import MEGABYTE, ServeSettings

DIGITS_FIELD = "digits"
USAGE_FILE = ".usage.json"  # the running tally; hidden, so not read as a training image


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

    def usage(self) -> tuple[int, int]:
        """The files in the class folders and the disk space they take: the saved tally while
        the folders are as it found them, else counted from the files. Call it ``writing()``."""
        return self.saved_usage() or self.counted_usage()

    def counted_usage(self) -> tuple[int, int]:
        folders = [self.root / name for name in CLASS_NAMES if (self.root / name).is_dir()]
        sizes = [disk_use(path) for folder in folders for path in files_under(folder)]
        return len(sizes), sum(sizes)

    def saved_usage(self) -> tuple[int, int] | None:
        """The tally saved by the last correction; None if there is none, it is malformed, or a
        class folder has changed since (its modification time)."""
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
        """Each class folder's modification time (ns): adding or removing a file changes it."""
        times = {}
        for name in CLASS_NAMES:
            with suppress(FileNotFoundError):
                times[name] = (self.root / name).stat().st_mtime_ns
        return times

    def store(self, labels: str, images: list[np.ndarray]) -> tuple[list[Path], tuple[int, int]]:
        """Store each image as a PNG in its label's folder, all or none; the paths written and
        the collection's files and disk use after. 507 when they would not fit: checked at the
        files' own sizes before they are written, and at the disk space they take after."""
        encoded = [png_bytes(image) for image in images]
        if not self.root.is_dir():  # a correction refused into an empty collection makes no folder
            self.check_room(0, 0, len(encoded), sum(map(len, encoded)))
        with self.writing():
            files, size = self.usage()
            self.check_room(files, size, len(encoded), sum(map(len, encoded)))
            written: list[Path] = []
            try:
                for label, data in zip(labels, encoded, strict=True):
                    final = self.root / label / unique_name()
                    with atomic_path(final, suffix=".png") as tmp:
                        tmp.write_bytes(data)
                    written.append(final)
                added = sum(map(disk_use, written))
                self.check_room(files, size, len(written), added)
                self.save_usage(files + len(written), size + added)
            except BaseException:
                for path in written:
                    path.unlink(missing_ok=True)
                raise
        return written, (files + len(written), size + added)

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
    """The disk space a file takes, in whole blocks (its size where the system does not say)."""
    try:
        status = path.stat()
    except FileNotFoundError:  # removed since it was listed
        return 0
    blocks = getattr(status, "st_blocks", None)
    return status.st_size if blocks is None else blocks * 512


def unique_name() -> str:
    """A file name no other correction gets, in any process: the time, then random hex."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:16]}.png"


def checked_digits(text: str) -> str:
    """The corrected digits, whitespace removed; 422 unless they are digits 0 to 9."""
    digits = "".join(text.split())
    if not re.fullmatch(r"[0-9]+", digits):
        shown = f"{digits[:20]!r}{'...' if len(digits) > 20 else ''}"
        raise HTTPException(
            422, f"'{DIGITS_FIELD}' must be the digits the image shows, e.g. 4096, not {shown}"
        )
    return digits


def store_correction(
    collection: Collection, data: bytes, text: str, max_pixels: int | None, single: bool
) -> dict:
    """Read the image as recognition does and store its digits under the corrected labels;
    422 when the number of digits differs. CPU-bound, so it runs in a worker thread."""
    digits = checked_digits(text)
    crops = image_digits(data, single, max_pixels or MAX_PIXELS)
    if len(crops) != len(digits):
        raise HTTPException(
            422,
            f"the image has {len(crops)} digit{'' if len(crops) == 1 else 's'} but the "
            f"correction gives {len(digits)}: nothing stored",
        )
    written, (files, size) = collection.store(digits, [crop.image for crop in crops])
    return {
        "stored": [
            {"label": label, "file": path.relative_to(collection.root).as_posix(), "box": crop.box}
            for label, path, crop in zip(digits, written, crops, strict=True)
        ],
        "collection": {
            "files": files,
            "bytes": size,
            "max_files": collection.max_files,
            "max_bytes": collection.max_bytes,
        },
    }
