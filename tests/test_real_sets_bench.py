"""The real-handwriting benchmark's parts: the cheques and CVL digits it reads, and how a reading
is compared (digits only). Skipped where the real sets (``../shared/realdigits``) are absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from benchmark_module import benchmark_module


@pytest.fixture(scope="module")
def bench():
    """benchmarks/real_sets.py as a module (benchmarks/ is not a package)."""
    yield from benchmark_module("real_sets.py", "real_sets_bench")


@pytest.fixture(scope="module")
def data(bench) -> Path:
    if not (bench.DATA / "orand_car_a" / "labels.csv").is_file():
        pytest.skip(f"the real sets are not at {bench.DATA} (../shared/realdigits)")
    return bench.DATA


def test_every_cheque_is_read_from_its_file_with_its_digits(bench, data):
    cases = bench.orand_cheques(data)
    assert len(cases) == 1080
    assert all(case.truth.isdigit() and case.image.ndim == 2 for case in cases)
    assert {len(case.truth) for case in cases} == set(range(1, 8))


def test_a_cvl_digit_is_given_enlarged_on_paper_with_its_label(bench, data):
    cases = bench.cvl_digits(data, "valid", 20)
    assert len(cases) == 20
    side = 28 * bench.SCALE + 2 * bench.MARGIN
    for case in cases:
        assert case.image.shape == (side, side) and case.truth in "0123456789"
        assert (case.image[: bench.MARGIN] == 255).all()  # white paper around the digit
        assert case.image.min() < 128  # dark ink


def test_only_the_digits_of_a_reading_are_compared(bench):
    reader = bench.digits_only(lambda image: "12.500\n3?")
    assert reader(np.zeros((2, 2), np.uint8)) == "125003"


def test_the_rows_are_chosen_by_name(bench):
    assert bench.set_names("cvl") == ["cvl"]
    with pytest.raises(Exception, match="expected some of"):
        bench.set_names("orand,mnist")


def test_the_models_of_an_earlier_revision_are_read_from_git(bench, tmp_path):
    classifier, lines, crops = bench.shipped_at("HEAD", tmp_path)
    described = bench.Recognizer.load(classifier, lines=lines).describe()
    assert str(tmp_path) in str(described)  # both models read from the files written
    assert crops == tmp_path / "documents.onnx" and crops.stat().st_size > 0
    (reader,) = bench.previous_readers("HEAD", ["auto"], tmp_path).values()
    assert reader(np.full((40, 120), 255, np.uint8)) == ""
    with pytest.raises(SystemExit, match="no src/digitrec/assets"):
        bench.shipped_at("0000000", tmp_path)


def test_cvl_lines_are_digits_of_one_valid_writer_in_the_test_style(bench, data):
    cases = bench.cvl_lines(data, 12)
    assert len(cases) == 12
    assert all(3 <= len(case.truth) <= 10 and case.truth.isdigit() for case in cases)
    assert all(case.image.ndim == 2 and case.image.min() < 128 for case in cases)
