"""Items made in a worker process (``digitrec.training.background``), and the line recognizer's training
batches made that way."""

import multiprocessing

import numpy as np
import pytest

from digitrec.errors import DigitrecError
from digitrec.training.background import in_background


def test_in_background_yields_what_the_producer_makes_in_order():
    assert list(in_background(range, 20, ahead=3)) == list(range(20))


def test_a_failure_in_the_worker_is_raised_naming_it():
    with pytest.raises(DigitrecError, match="ValueError: invalid literal"):
        list(in_background(int, "not a number"))


def test_stopping_early_stops_the_worker():
    items = in_background(range, 10**9, ahead=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    assert multiprocessing.active_children()  # the worker, waiting to queue more
    items.close()  # the generator's finally: the worker is told to stop and joined
    assert not multiprocessing.active_children()


def test_training_lines_made_in_a_worker_are_those_made_here():
    from digitrec.synth.pages import line_samples
    from digitrec.training.line_batches import training_batches

    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    args = (line_samples, digits, np.arange(40) % 10, 3, range(1, 3), 2, 4)
    here = list(training_batches(*args))
    there = list(in_background(training_batches, *args))
    assert len(here) == len(there) == 4  # two epochs of two batches
    for (x_here, y_here), (x_there, y_there) in zip(here, there, strict=True):
        np.testing.assert_array_equal(x_here, x_there)
        np.testing.assert_array_equal(y_here, y_there)
