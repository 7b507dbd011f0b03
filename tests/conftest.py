"""Shared fixtures: the real MNIST (skipped without DIGITREC_DATA_DIR) and the tests' own helpers."""

from __future__ import annotations

import os

import pytest

from digitrec.data import DATA_DIR_ENV, Dataset, load_dataset


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    """The real MNIST from ``DIGITREC_DATA_DIR``; tests using it skip (with the reason) without it."""
    if not os.environ.get(DATA_DIR_ENV):
        pytest.skip(f"{DATA_DIR_ENV} is not set: this test needs the real MNIST files")
    return load_dataset("mnist", download=False, progress=False)
