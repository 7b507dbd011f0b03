"""The benchmark of fine-tuning on your own strings, in its parts at a tiny scale: ORAND-CAR-A's
layout split 80/20 into strings folders, the held-out strings scored, and the report."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from benchmark_module import benchmark_module
from PIL import Image

from digitrec.read.image_folders import string_labels


@pytest.fixture(scope="module")
def bench():
    """benchmarks/finetune_strings.py as a module (benchmarks/ is not a package)."""
    yield from benchmark_module("finetune_strings.py", "finetune_strings_bench")


def orand_like(folder: Path, count: int = 40) -> Path:
    """A folder laid out as ORAND-CAR-A's: labels.csv (file,text,boxes) and the images in train/."""
    (folder / "train").mkdir(parents=True)
    with (folder / "labels.csv").open("w", newline="") as stream:
        table = csv.writer(stream)
        table.writerow(["file", "text", "boxes"])
        for k in range(count):
            name = f"a_car_{k:06d}.jpg"
            Image.fromarray(np.full((40, 100), 200 + k % 50, np.uint8)).save(
                folder / "train" / name
            )
            table.writerow([name, str(10 ** (3 + k % 2) + k), json.dumps([[0, 0, 1, 1]])])
    return folder


def test_the_amounts_are_split_80_20_into_strings_folders_of_every_length(bench, tmp_path):
    split = bench.split_orand(orand_like(tmp_path / "orand"), tmp_path / "split", seed=0)
    train, test = string_labels(split.train), string_labels(split.test)
    assert len(train) == 32 and len(test) == 8
    assert Counter(len(t) for t in test.values()) == {4: 4, 5: 4}  # the same share of each length
    assert not {p.name for p in train} & {p.name for p in test}
    assert all(path.is_symlink() and path.resolve().is_file() for path in [*train, *test])
    again = bench.split_orand(tmp_path / "orand", tmp_path / "again", seed=0)
    assert sorted(p.name for p in string_labels(again.test)) == sorted(p.name for p in test)


def test_a_reader_is_scored_on_the_digits_it_reads(bench, tmp_path):
    split = bench.split_orand(orand_like(tmp_path / "orand"), tmp_path / "split", seed=0)
    truth = string_labels(split.test)
    first = next(iter(truth))
    scores = bench.read_strings(
        split.test, lambda path: f"{truth[path][:2]}.{truth[path][2:]}-" if path != first else "7"
    )
    assert scores["strings"] == 8 and scores["exact"] == 7


def test_the_report_names_the_machine_and_every_reader_and_layout(bench):
    scores = {"exact_accuracy": 0.9, "digit_accuracy": 0.97, "strings": 216}
    strings = {"fine-tuned, as predict reads (auto)": scores, "shipped line model alone": scores}
    pages = {"fine-tuned": {"form": 0.5, "user": 1.0}, "shipped": {"form": 0.25, "user": 1.0}}
    facts = dict(strings=1080, seed=0, train=864, learned=691, chose=173, epochs=12)
    facts |= dict(best_epoch=9, minutes=8.2, total=20.5, test=216, pages=20)
    facts |= dict(cvl_lines=200, init="documents")
    text = bench.report(strings, pages, {"fine-tuned": 0.61, "shipped": 0.6}, facts)
    assert "cores" in text and "measured" in text
    assert "| fine-tuned, as predict reads (auto) | 90.0% | 97.0% | 216 |" in text
    assert "| **mean** | **75.0%** | **62.5%** |" in text
    assert "| CVL valid writers' lines of 3-10 (200, digits) | 61.0% | 60.0% |" in text
    assert "shipped line model `documents`" in text
