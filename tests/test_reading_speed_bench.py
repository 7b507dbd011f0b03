"""The reading-speed benchmark's parts: its photos, its core pinning and its tables."""

from __future__ import annotations

import importlib.util
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    """benchmarks/reading_speed.py, imported with benchmarks/ on the path for the time."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        yield importlib.import_module("reading_speed")


def test_a_photo_page_holds_an_eight_digit_number(bench):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 20)
    picture, line = bench.photo_page(images, labels, np.random.default_rng(1))
    assert len(line.text) == 8 and line.text.isdigit()
    assert picture.shape[0] > line.box[3] and picture.shape[1] > line.box[2]


@pytest.mark.parametrize("size", [(640, 480), (4000, 3000)])
@pytest.mark.parametrize("shape", [(900, 600, 3), (300, 500)])
def test_framed_gives_the_size_asked_with_the_number_in_it(bench, size, shape):
    picture = np.full(shape, 255, np.uint8)
    box = (shape[1] // 2, shape[0] - 60, shape[1] // 2 + 80, shape[0] - 20)  # near the bottom
    picture[box[1] : box[3], box[0] : box[2]] = 0
    framed = bench.framed(picture, box, size)
    assert framed.shape[:2] == (size[1], size[0])
    scale = max(size[0] / shape[1], size[1] / shape[0])
    assert (np.atleast_3d(framed)[..., 0] < 128).sum() == pytest.approx(
        80 * 40 * scale**2, rel=0.1
    )  # all of the box
    decoded = Image.open(io.BytesIO(bench.jpeg(framed)))
    assert decoded.format == "JPEG" and decoded.size == size


def test_a_number_wider_than_the_frame_is_refused(bench):
    with pytest.raises(SystemExit, match="does not fit"):
        bench._window_start(10.0, 700.0, 640, 2000)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux only")
def test_one_core_pins_the_process_and_gives_its_cores_back(bench):
    cores = os.sched_getaffinity(0)
    with bench.one_core() as core:
        assert os.sched_getaffinity(0) == {core}
    assert os.sched_getaffinity(0) == cores


def test_the_speed_table_says_which_targets_are_met(bench):
    speeds = [
        bench.Speed("640×480 photo", "pages", [30.0, 40.0, 90.0], 4, 5, 50.0),
        bench.Speed("640×480 photo", "auto", [60.0, 61.0, 20.0], 5, 5, 50.0),
    ]
    lines = bench.speed_table(speeds).splitlines()
    assert lines[2] == "| 640×480 photo | pages | 40 | ≤ 50 | met | 4/5 |"
    assert lines[3] == "| 640×480 photo | auto | 60 | ≤ 50 | NOT met | 5/5 |"


def test_the_memory_table_gives_the_process_peak_and_the_reads_extra(bench):
    memory = bench.Memory(before=100_000, load_peak=150_000, read_peak=400_000, ms=5.0, text="12")
    (row,) = bench.memory_table({"pages": memory}, "12").splitlines()[2:]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # kB of 1,024 bytes in MB of 10^6: 400,000 kB peak, 300,000 kB more than before the read.
    assert cells[3:] == ["102", "410", "307", "≤ 300", "NOT met", "1/1"]
