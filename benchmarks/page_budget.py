"""The page reader's budget on the worst images we can construct: time and peak memory of one
read each, in a fresh process per image, with the default reader ("auto") and, as the reference
in the same run, the single-digit classifier (``--reader digits``) and an ordinary photographed
page of digits. Then the service: single-digit latency from one client while another sends the
worst pages to the same worker, against single-digit latency alone.

    python benchmarks/page_budget.py [--repeat 3] [--seconds 20] [--write-readme]

Each image is small as a file (a few KB) and within the pixel limit; what it holds is built to
make line finding and the line model work hardest: thousands of marks the size of writing,
hundreds of short lines, a long dotted line, patterns, thin strips. `--write-readme` fills the
`page_budget` block of docs/benchmarks/page-budget.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from common import machine, markdown_table, median, write_into_readme
from PIL import Image

BUDGET_SECONDS, BUDGET_MB = 2.0, 500

MEASURE = """
import json, sys, time
import numpy as np
from digitrec.errors import ImageError
from digitrec.read.recognizer import Recognizer
recognizer = Recognizer.load("default", threads=1)
small = np.full((60, 200), 255, np.uint8)
small[20:40, 20:24] = small[20:40, 60:64] = 0
recognizer.read(small, reader="pages")  # the libraries' first-use allocations
def resident(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # the peak so far (the models' loading) set back to what is resident now
before = resident("VmRSS:")
start = time.perf_counter()
try:
    outcome = "read: " + repr(recognizer.read(sys.argv[1], reader=sys.argv[2]).text[:12])
except ImageError as exc:
    outcome = type(exc).__name__
seconds = time.perf_counter() - start
peak, kept = (resident("VmHWM:") - before) / 1024, (resident("VmRSS:") - before) / 1024
print(json.dumps([seconds, peak, kept, outcome]))
"""


def paper(rows: int, cols: int) -> np.ndarray:
    return np.full((rows, cols), 255, np.uint8)


def inked(rows: int, cols: int) -> np.ndarray:
    """A thin image with ink along its length and a mark across it."""
    image = paper(rows, cols)
    if rows >= cols:
        image[:, cols // 2] = 0
    else:
        image[rows // 2, :] = 0
    image[: max(1, rows // 3), : max(1, cols // 3)] = 0
    return image


def dot_grid(step: int = 8, dot: int = 3, side: int = 1200) -> np.ndarray:
    """22,500 dots the size a page of dots makes its writing: the worst case found."""
    image = paper(side, side)
    for dy in range(dot):
        for dx in range(dot):
            image[dy::step, dx::step] = 0
    return image


def checkerboard(square: int = 4, side: int = 1200) -> np.ndarray:
    return ((np.indices((side, side)).sum(0) // square) % 2 * 255).astype(np.uint8)


def bricks(side: int = 1200, course: int = 12) -> np.ndarray:
    image = paper(side, side)
    for row in range(0, side, course):
        image[row, :] = 0
        image[row : row + course, (row // course) % 2 * course :: 2 * course] = 0
    return image


def specks(count: int = 30_000, side: int = 1200) -> np.ndarray:
    image = paper(side, side)
    rows, cols = np.random.default_rng(0).integers(0, side, (2, count))
    image[rows, cols] = 0
    return image


def ruled(step: int = 30, side: int = 1200) -> np.ndarray:
    image = paper(side, side)
    image[::step, :] = 90
    return image


def squared(step: int = 30, side: int = 1200) -> np.ndarray:
    image = ruled(step, side)
    image[:, ::step] = 90
    return image


def many_lines(side: int = 1200) -> np.ndarray:
    """130 rows of two small blobs each far apart, and a long dotted line: lines that each
    come to thousands of columns at the line model's height."""
    image = paper(side, side)
    for row in range(4, side - 4, 9):
        image[row : row + 4, 10:14] = 0
        image[row : row + 4, side - 20 : side - 16] = 0
    image[side // 2 : side // 2 + 4, ::6] = 0
    return image


PATTERNS: dict[str, Callable[[], np.ndarray]] = {
    "dot grid": dot_grid,
    "checkerboard": checkerboard,
    "bricks": bricks,
    "specks": specks,
    "ruled paper": ruled,
    "squared paper": squared,
    "many lines": many_lines,
}

SHAPES = [(1, 1), (2, 2), (1, 1025), (1, 3000), (3000, 1), (2, 6000), (6000, 2), (16, 4799)]
SHAPES += [(50, 20000), (20000, 50), (3, 7), (7, 3), (5, 12000), (12000, 5)]


def under_the_piece_cap(side: int = 1200, step: int = 20) -> np.ndarray:
    """3,600 dots of 3 pixels, under the 4,000 pieces a page may hold."""
    return dot_grid(step, 3, side)


def lines_up_to_the_column_cap(side: int = 1200) -> np.ndarray:
    """34 lines of square blobs across the page, each about 1,700 columns at the line model's
    height: near the most columns the budget lets through, all read by the line model."""
    image = paper(side, side)
    for row in range(20, side - 20, 34):
        for col in range(40, side - 40, 24):
            image[row : row + 12, col : col + 12] = 0
    return image


def photo_of_digits() -> np.ndarray:
    """The reference: an ordinary 640x480 photo of a form of 8-digit numbers from the page
    generator (its test style)."""
    from reading import mnist_digits  # benchmarks/reading.py

    from digitrec.synth.pages import page_sample

    sample = page_sample("photo", *mnist_digits("test"), seed=5, style="test")
    return np.asarray(Image.fromarray(sample.image).convert("L").resize((640, 480)))


CASES: dict[str, Callable[[], np.ndarray]] = {
    "photo of a form (reference)": photo_of_digits,
    **{name: PATTERNS[name] for name in PATTERNS},
    "3,600 dots (under the mark cap)": under_the_piece_cap,
    "lines up to the column cap": lines_up_to_the_column_cap,
    "strip 20000x50 inked": lambda: inked(50, 20000),
    "strip 4799x16 inked": lambda: inked(16, 4799),
    "column 1x3000 inked": lambda: inked(3000, 1),
}


def write_cases(folder: Path) -> dict[str, Path]:
    """Each case as a PNG (and the dot grid as a WebP too), with its size in the name."""
    files = {}
    for name, make in CASES.items():
        path = folder / f"{len(files)}.png"
        Image.fromarray(make()).save(path, optimize=True)
        files[name] = path
    path = folder / "grid.webp"
    Image.fromarray(dot_grid()).save(path, lossless=True)
    files["dot grid as WebP"] = path
    return files


class Cost(NamedTuple):
    """One read in a fresh process: seconds, its peak memory above what was resident before it
    (MB), what stayed resident after it (MB), and what it gave."""

    seconds: float
    peak: float
    kept: float
    outcome: str


def measure(path: Path, reader: str, repeat: int = 1) -> Cost:
    """The median cost of one read of ``path`` over ``repeat`` fresh processes (Linux)."""
    runs = []
    for _ in range(repeat):
        result = subprocess.run(
            [sys.executable, "-c", MEASURE, str(path), reader],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode:
            return Cost(float("nan"), float("nan"), float("nan"), "crashed: " + result.stderr)
        runs.append(Cost(*json.loads(result.stdout.splitlines()[-1])))
    return Cost(*(median([run[k] for run in runs]) for k in range(3)), runs[-1].outcome)


def reading_table(files: dict[str, Path], repeat: int) -> str:
    rows = []
    for name, path in files.items():
        image = Image.open(path)
        cost = measure(path, "auto", repeat)
        digits = measure(path, "digits")
        within = cost.seconds <= BUDGET_SECONDS and cost.peak <= BUDGET_MB
        rows.append(
            [
                name,
                f"{image.width}x{image.height}",
                f"{path.stat().st_size / 1024:.1f} KB",
                f"{cost.seconds:.2f}",
                f"{cost.peak:.0f}",
                cost.outcome,
                f"{digits.seconds:.2f}",
                "yes" if within else "**no**",
            ]
        )
        print(rows[-1], flush=True)
    header = ["image", "pixels", "file", "auto s", "auto peak MB", "outcome", "digits s"]
    return markdown_table([*header, "within budget"], rows)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(port: int, body: bytes) -> float:
    """Seconds for one multipart read request to the service."""
    import http.client

    boundary = "budget"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + body
        + f"\r\n--{boundary}--\r\n".encode()
    )
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.perf_counter()
    connection.request(
        "POST",
        "/api/v1/recognize",
        form,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    connection.getresponse().read()
    connection.close()
    return time.perf_counter() - start


def latencies(port: int, digit: bytes, seconds: float) -> list[float]:
    end, times = time.monotonic() + seconds, []
    while time.monotonic() < end:
        times.append(post(port, digit))
    return times


def serve_table(seconds: float) -> str:
    """Single-digit latency alone, then while one client sends the worst pages in a loop."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "digitrec", "serve", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        digit = png_bytes(inked(28, 28)[::-1].copy())
        worst = [png_bytes(make()) for make in (dot_grid, many_lines, under_the_piece_cap)]
        latencies(port, digit, 2)  # warm up
        alone = latencies(port, digit, seconds)
        stop = threading.Event()

        def attack() -> None:
            k = 0
            while not stop.is_set():
                post(port, worst[k % len(worst)])
                k += 1

        attacker = threading.Thread(target=attack)
        attacker.start()
        loaded = latencies(port, digit, seconds)
        stop.set()
        attacker.join()
    finally:
        server.terminate()
        server.wait(30)
    rows = [
        [label, len(times), f"{1000 * median(times):.1f}", f"{1000 * np.percentile(times, 99):.1f}"]
        for label, times in (("alone", alone), ("one client sending the worst pages", loaded))
    ]
    return markdown_table(["single-digit requests", "count", "p50 ms", "p99 ms"], rows)


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per image")
    parser.add_argument("--seconds", type=float, default=20, help="per service latency row")
    parser.add_argument("--write-readme", action="store_true", help="fill the docs page's block")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as folder:
        files = write_cases(Path(folder))
        reading = reading_table(files, args.repeat)
    serving = serve_table(args.seconds)
    text = "\n\n".join(
        [
            f"{machine()}; budget {BUDGET_SECONDS:g} s and {BUDGET_MB} MB a read, one thread.",
            reading,
            f"The service, one worker (`digitrec serve --workers 1`), {args.seconds:g} s per row:",
            serving,
        ]
    )
    print(text)
    if args.write_readme:
        write_into_readme("page_budget", text)


if __name__ == "__main__":
    main()
