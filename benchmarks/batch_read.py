"""Reading many files: one process, `--jobs 2` and Ray with 2 CPUs, on the same images.

`--images` MNIST *validation* digits (the last 5,000 training images) are rendered as users'
images (`digitrec.synth.user_digits.user_digit_image`, PNG) into a temporary folder, then read with
`digitrec.read_files` (what `digitrec predict` runs), the default model, in each mode:

- one process (`digitrec predict DIR`, ONNX Runtime's own thread count);
- `--jobs 2`: two worker processes, one ONNX Runtime thread each;
- Ray: a local Ray instance of 2 CPUs, started and stopped by the run, two actors.

Each mode reads all the images, and, separately, the first half of them, each a whole call
(start, reading, shut-down). The steady rate is the second half's images over the extra time
they took; the fixed cost (pool or Ray start, model loads, shut-down) is what remains of the
whole call. (Arrival times cannot give it: Ray hands results back in bursts, long after it
read them.) Each figure is the median over `--repeats` repetitions.
Targets: `--jobs 2` >= 1.8x one process; Ray within 20% of `--jobs 2` once started.

    python benchmarks/batch_read.py [--images 5000] [--repeats 3] [--write-readme]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, markdown_table, median, write_into_readme

from digitrec import read_files
from digitrec.synth.user_digits import user_digit_image

MODES = {  # label: options of read_files
    "one process": {},
    "--jobs 2": {"jobs": 2},
    "Ray, 2 CPUs": {"jobs": 2, "ray": True},
}


def render(folder: Path, count: int, seed: int = 0) -> None:
    """``count`` validation digits, chosen at random, written as users' PNG images."""
    from digitrec.data import load_dataset

    data = load_dataset("mnist", progress=False)
    validation = data.train_images[-5000:]
    rng = np.random.default_rng(seed)
    for k, index in enumerate(tqdm(rng.choice(len(validation), count), "rendering")):
        user_digit_image(validation[index], rng).save(folder / f"{k:05d}.png")


def wall_time(files: list[str], options: dict) -> float:
    """Seconds to read ``files`` in one call, everything included (start, reading, shut-down)."""
    start = time.perf_counter()
    for _ in read_files(files, **options):
        pass
    return time.perf_counter() - start


def timed_run(files: list[str], options: dict) -> dict[str, float]:
    """One mode's figures from one run on all the files and one on the first half of them: the
    steady rate is the extra images over the extra time, the fixed cost what remains."""
    half = wall_time(files[: len(files) // 2], options)
    wall = wall_time(files, options)
    rate = (len(files) - len(files) // 2) / (wall - half)
    return {"wall": wall, "rate": rate, "startup": wall - len(files) / rate}


def measure(files: list[str], repeats: int) -> dict[str, dict[str, float]]:
    """Medians over the repetitions for each mode, the modes taking turns."""
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for repeat in range(repeats):
        for mode, options in MODES.items():
            runs[mode].append(timed_run(files, options))
            print(f"repetition {repeat + 1}, {mode}: {runs[mode][-1]}", file=sys.stderr)
    return {
        mode: {key: median([run[key] for run in results]) for key in results[0]}
        for mode, results in runs.items()
    }


def table(results: dict[str, dict[str, float]], images: int, repeats: int, load: tuple) -> str:
    one, jobs, ray = (results[mode]["rate"] for mode in MODES)
    rows = [
        [
            mode,
            f"{figures['startup']:.2f}",
            f"{figures['rate']:,.0f}",
            f"{figures['wall']:.1f}",
            f"{images / figures['wall']:,.0f}",
        ]
        for mode, figures in results.items()
    ]
    header = [
        "mode",
        "start-up + shut-down (s)",
        "steady (images/s)",
        "wall (s)",
        "overall (images/s)",
    ]
    speedup, ray_share = jobs / one, ray / jobs
    return "\n".join(
        [
            f"Reading {images:,} user-style images (validation digits, PNG), default model; "
            f"medians of {repeats} repetitions; {machine()}; load average {load[0]:.1f} before, "
            f"{load[1]:.1f} after (other work on the machine slows every figure).",
            "",
            markdown_table(header, rows),
            "",
            f"- `--jobs 2` steady rate {speedup:.2f}x one process "
            f"(target >= 1.8x: {'met' if speedup >= 1.8 else 'NOT met'})",
            f"- Ray steady rate {ray_share:.0%} of `--jobs 2` "
            f"(target >= 80%: {'met' if ray_share >= 0.8 else 'NOT met'})",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        render(Path(tmp), args.images)
        files = sorted(map(str, Path(tmp).iterdir()))
        before = os.getloadavg()[0]
        results = measure(files, args.repeats)
    text = table(results, args.images, args.repeats, (before, os.getloadavg()[0]))
    print(text)
    if args.write_readme:
        write_into_readme("batch", text)


if __name__ == "__main__":
    main()
