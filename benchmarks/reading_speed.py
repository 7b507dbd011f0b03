"""Reading speed of the page reader: a 640×480 photo on one core, a 12-megapixel photo on all.

The shipped models (``Recognizer.load("default")``) read JPEG bytes (quality 90) as
``Recognizer.read(data, reader=...)`` does, end to end: decoding, line finding, the line model,
rejection (and with "auto" the single-digit classifier and the choice between the two); readers
"pages" and "auto".

- A 640×480 photo of an 8-digit number, the whole process pinned to one core
  (``os.sched_setaffinity``) and the models loaded with ``threads=1``: the median over
  ``--repeats`` reads of each of ``--photos`` photos, after one warm-up read. Target ≤ 50 ms.
- A 12-megapixel phone photo (4000×3000, the first photo's page enlarged), the process's own
  cores and ONNX Runtime's default threads: the median of ``--repeats`` reads after a warm-up.
  Target ≤ 1 s. Its peak memory: each reader reads it once in a fresh process that loads the
  models, notes its resident memory, restarts the kernel's peak count (``/proc/self/clear_refs``),
  reads, and reports the peak since; the read's extra peak is that peak minus the memory before
  the read. Target ≤ 300 MB extra (MB: 10^6 bytes).

Each row says how many of its photos were read exactly (the page's true text), so that a speed
is not that of a reader that failed. The page reader's stages (decoding, line finding, the line
model on the lines found) are timed apart, to show where the time goes.

The photos are the project's "photo" layout (``digitrec.synth.layouts.photo``: a page on a
desk, in perspective, under uneven light) in the validation style, written with MNIST validation
digits (the last 5,000 training images). That layout writes 1-4 digits and takes the count from
no setting, so it is given digits that always draw eight (``EightDigits``); the picture is then
scaled to cover the frame and cropped to it around the number. Linux only (``/proc``).

    python benchmarks/reading_speed.py [--photos 10] [--repeats 3] [--seed 0] [--write-readme]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, markdown_table, median, write_into_readme

from digitrec.data import load_dataset, split_validation
from digitrec.read.imaging import MAX_PIXELS
from digitrec.read.line_finder import find_lines
from digitrec.read.recognizer import Recognizer
from digitrec.synth import layouts
from digitrec.synth.layouts import Digits
from digitrec.synth.sheet import LineTruth
from digitrec.synth.style import page_style
from digitrec.training.config import TrainConfig

DIGITS = 8  # digits of the number on every photo
FRAME = (640, 480)  # (cols, rows) of the small photo
PHONE = (4000, 3000)  # 12 megapixels
QUALITY = 90  # JPEG quality of both photos
READERS = ("pages", "auto")
PHOTO_TARGET, PHONE_TARGET = 50.0, 1000.0  # ms per read
MEMORY_TARGET = 300.0  # MB of extra peak for the read of the phone photo
STAGES = ("decode", "find lines", "line model")


class EightDigits(Digits):
    """Digits whose every draw is ``DIGITS`` of them, whatever count the layout asks for."""

    def draw(self, count: int, rng: np.random.Generator) -> tuple[list[np.ndarray], str]:
        return super().draw(DIGITS, rng)


@dataclass
class Photo:
    """A photo's JPEG bytes and its true text."""

    data: bytes
    text: str


@dataclass
class Speed:
    """One timed row: the milliseconds of its reads, and how many of its photos read exactly."""

    case: str
    reader: str
    ms: list[float]
    exact: int
    photos: int
    target: float


def photo_page(
    images: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, LineTruth]:
    """A "photo" layout page of an 8-digit number in the validation style, and its truth."""
    picture, lines = layouts.photo(EightDigits(images, labels), page_style("validation"), rng)
    (line,) = lines
    if len(line.text) != DIGITS:
        raise SystemExit(f"the photo layout wrote {line.text!r}, not {DIGITS} digits")
    return picture, line


def _window_start(low: float, high: float, side: int, length: int) -> int:
    """Where a window ``side`` long starts on an axis ``length`` long, centred on [low, high)
    as far as the axis allows; the span must fit in it."""
    start = min(max(0, round((low + high - side) / 2)), length - side)
    if low < start or high > start + side:
        raise SystemExit(f"the number ({high - low:.0f} px) does not fit in a frame of {side} px")
    return start


def framed(
    picture: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]
) -> np.ndarray:
    """The picture scaled to cover ``size`` (cols, rows) and cropped to it around ``box``."""
    rows, cols = picture.shape[:2]
    scale = max(size[0] / cols, size[1] / rows)
    shape = (max(size[0], round(cols * scale)), max(size[1], round(rows * scale)))
    smaller = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    scaled = cv2.resize(picture, shape, interpolation=smaller)
    x = _window_start(box[0] * scale, box[2] * scale, size[0], shape[0])
    y = _window_start(box[1] * scale, box[3] * scale, size[1], shape[1])
    return scaled[y : y + size[1], x : x + size[0]]


def jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue()


def photos(count: int, seed: int) -> tuple[list[Photo], Photo]:
    """``count`` 640×480 photos, and the 12-megapixel one made from the first one's page."""
    data = load_dataset("mnist", progress=False)
    _, _, images, labels = split_validation(
        data.train_images, data.train_labels, TrainConfig.val_size
    )
    pages = [photo_page(images, labels, np.random.default_rng([seed, k])) for k in range(count)]
    small = [Photo(jpeg(framed(page, line.box, FRAME)), line.text) for page, line in pages]
    page, line = pages[0]
    return small, Photo(jpeg(framed(page, line.box, PHONE)), line.text)


def _pin(cores: set[int]) -> None:
    for thread in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
            os.sched_setaffinity(int(thread), cores)


@contextlib.contextmanager
def one_core() -> Iterator[int]:
    """The whole process (every thread, and those it starts) on one of its cores, then back."""
    cores = os.sched_getaffinity(0)
    _pin({min(cores)})
    try:
        yield min(cores)
    finally:
        _pin(cores)


def speed(
    recognizer: Recognizer, case: str, shots: list[Photo], reader: str, repeats: int, target: float
) -> Speed:
    """``repeats`` timed reads of each photo, after one warm-up read."""
    recognizer.read(shots[0].data, reader=reader)
    times, exact = [], 0
    for photo in shots:
        texts = set()
        for _ in range(repeats):
            start = time.perf_counter()
            texts.add(recognizer.read(photo.data, reader=reader).text)
            times.append(1000 * (time.perf_counter() - start))
        exact += texts == {photo.text}
    return Speed(case, reader, times, exact, len(shots), target)


def stage_times(recognizer: Recognizer, shots: list[Photo], repeats: int) -> dict[str, float]:
    """Median milliseconds of the page reader's stages over ``repeats`` runs on each photo, and
    the median count of lines found (each read by the line model)."""
    pages = recognizer.pages
    runs: dict[str, list[float]] = {name: [] for name in (*STAGES, "lines")}
    for photo in shots * repeats:
        marks = [time.perf_counter()]
        gray, _ = pages.decode(photo.data, MAX_PIXELS)
        marks.append(time.perf_counter())
        found = find_lines(gray)
        marks.append(time.perf_counter())
        pages.reader.read_lines([line.crop for line in found])
        marks.append(time.perf_counter())
        for name, (start, end) in zip(STAGES, itertools.pairwise(marks), strict=True):
            runs[name].append(1000 * (end - start))
        runs["lines"].append(len(found))
    return {name: median(values) for name, values in runs.items()}


def status_kb(field: str) -> int:
    """A figure of /proc/self/status in kB (VmRSS: resident now; VmHWM: the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise SystemExit(f"/proc/self/status has no {field}")


def mb(kb: float) -> float:
    return kb * 1024 / 1e6


@dataclass
class Memory:
    """One read in a fresh process: the resident memory before it, the peak while the models
    loaded and the peak during the read (kB), and the read's milliseconds and text."""

    before: int
    load_peak: int
    read_peak: int
    ms: float
    text: str

    @property
    def extra_mb(self) -> float:
        return mb(self.read_peak - self.before)

    @property
    def peak_mb(self) -> float:
        return mb(max(self.load_peak, self.read_peak))


def memory_child(path: str, reader: str) -> None:
    """In a fresh process: load the models, read the image once, print its ``Memory`` (JSON)."""
    recognizer = Recognizer.load("default")
    data = Path(path).read_bytes()
    before, load_peak = status_kb("VmRSS"), status_kb("VmHWM")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from now
    except OSError as error:
        raise SystemExit(f"cannot restart the peak memory count: {error}") from None
    start = time.perf_counter()
    text = recognizer.read(data, reader=reader).text
    ms = 1000 * (time.perf_counter() - start)
    print(json.dumps(asdict(Memory(before, load_peak, status_kb("VmHWM"), ms, text))))


def memory(photo: Photo, reader: str) -> Memory:
    """One read of the photo in a fresh process (``memory_child``)."""
    with tempfile.NamedTemporaryFile(suffix=".jpg") as file:
        file.write(photo.data)
        file.flush()
        command = [sys.executable, __file__, "--memory-child", file.name, reader]
        child = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if child.returncode != 0:
        raise SystemExit(f"the memory measurement failed:\n{child.stderr}")
    return Memory(**json.loads(child.stdout.splitlines()[-1]))


def met(value: float, target: float) -> str:
    return "met" if value <= target else "NOT met"


def speed_table(speeds: list[Speed]) -> str:
    """One row per case and reader: the median read, its target, and the photos read exactly."""
    rows = [
        [
            s.case,
            s.reader,
            f"{median(s.ms):.0f}",
            f"≤ {s.target:.0f}",
            met(median(s.ms), s.target),
            f"{s.exact}/{s.photos}",
        ]
        for s in speeds
    ]
    return markdown_table(
        ["case", "reader", "median ms", "target ms", "met?", "read exactly"], rows
    )


def memory_table(memories: dict[str, Memory], truth: str) -> str:
    """One row per reader: the phone photo's first read in a fresh process."""
    rows = [
        [
            "12 MP photo, first read in a fresh process, default threads",
            reader,
            f"{m.ms:.0f}",
            f"{mb(m.before):.0f}",
            f"{m.peak_mb:.0f}",
            f"{m.extra_mb:.0f}",
            f"≤ {MEMORY_TARGET:.0f}",
            met(m.extra_mb, MEMORY_TARGET),
            f"{int(m.text == truth)}/1",
        ]
        for reader, m in memories.items()
    ]
    header = ["case", "reader", "ms", "resident before the read MB", "process peak MB"]
    header += ["extra peak of the read MB", "target MB", "met?", "read exactly"]
    return markdown_table(header, rows)


def stage_table(stages: dict[str, dict[str, float]]) -> str:
    """The page reader's stages, one row per case."""
    rows = [
        [case, *(f"{figures[name]:.1f}" for name in STAGES), f"{figures['lines']:.0f}"]
        for case, figures in stages.items()
    ]
    header = ["page reader's stages", *(f"{name} ms" for name in STAGES), "lines found"]
    return markdown_table(header, rows)


def measure(
    small: list[Photo], phone: Photo, repeats: int
) -> tuple[list[Speed], dict[str, dict[str, float]], dict[str, Memory]]:
    """Every figure: the rows of speed, the stages of each case, and the memory per reader."""
    with one_core() as core:
        recognizer = Recognizer.load("default", threads=1)
        case = f"640×480 photo, core {core} only, threads=1"
        speeds = [speed(recognizer, case, small, r, repeats, PHOTO_TARGET) for r in READERS]
        stages = {case: stage_times(recognizer, small, repeats)}
    recognizer = Recognizer.load("default")
    case = f"12 MP photo, {len(os.sched_getaffinity(0))} cores, default threads"
    speeds += [speed(recognizer, case, [phone], r, repeats, PHONE_TARGET) for r in READERS]
    stages[case] = stage_times(recognizer, [phone], repeats)
    return speeds, stages, {reader: memory(phone, reader) for reader in READERS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10, help="640×480 photos to time")
    parser.add_argument("--repeats", type=int, default=3, help="timed reads of each photo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.photos < 1 or args.repeats < 1:
        parser.error("--photos and --repeats must be 1 or more")
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    small, phone = photos(args.photos, args.seed)
    before = os.getloadavg()[0]
    speeds, stages, memories = measure(small, phone, args.repeats)
    text = "\n".join(
        [
            f"Reading speed of the shipped models: `Recognizer.read` on JPEG bytes (quality "
            f"{QUALITY}), end to end; photos of {DIGITS}-digit numbers (the photo layout, "
            f"validation digits and style, seed {args.seed}); medians over {args.repeats} "
            f"reads of each photo ({args.photos} of 640×480, one of 12 MP) after a warm-up; "
            f"{machine()}; load average {before:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after (other work on the machine slows every figure).",
            "",
            speed_table(speeds),
            "",
            memory_table(memories, phone.text),
            "",
            stage_table(stages),
        ]
    )
    print(text)
    if args.write_readme:
        write_into_readme("reading-speed", text)


if __name__ == "__main__":
    main()
