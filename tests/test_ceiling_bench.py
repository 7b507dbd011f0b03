"""The ceiling benchmark: what a reader reading every digit as well as the classifier reads
clean MNIST digits would read of each digit layout's pages, and what its target asks."""

from __future__ import annotations

import numpy as np
import pytest
from benchmark_module import benchmark_module


@pytest.fixture(scope="module")
def bench():
    """benchmarks/ceiling.py as a module (benchmarks/ is not a package)."""
    yield from benchmark_module("ceiling.py", "ceiling_bench")


def test_a_page_is_read_exactly_only_if_all_its_digits_are(bench):
    assert bench.ceiling(1.0, np.array([3, 12])) == 1.0
    assert bench.ceiling(0.9, np.array([1, 2])) == pytest.approx((0.9 + 0.81) / 2)
    assert bench.ceiling(0.99, np.array([20])) < bench.ceiling(0.99, np.array([2]))


def test_the_accuracy_a_target_asks_gives_that_ceiling(bench):
    assert bench.accuracy_needed(np.array([10, 10]), 0.9) == pytest.approx(0.9**0.1)
    counts = np.array([1, 4, 9, 16, 36])
    for target in (0.5, 0.97, 0.99):
        needed = bench.accuracy_needed(counts, target)
        assert bench.ceiling(needed, counts) == pytest.approx(target, abs=1e-9)
        assert bench.ceiling(needed - 1e-4, counts) < target


def test_the_table_has_a_row_per_digit_layout_with_the_classifiers_accuracy(bench, mnist_dir):
    text = bench.table("validation", 2, seed=0)
    accuracy = float(text.split("reads ")[1].split("%")[0])
    assert 99.0 < accuracy <= 100.0  # measured on the 5,000 validation digits, not given
    rows = [line for line in text.splitlines() if line.startswith("| ") and "(2)" in line]
    assert [row.split(" (")[0][2:] for row in rows] == list(bench.TARGETS)
