"""Shared fixtures: the real MNIST when DIGITREC_DATA_DIR names it, and small IDX datasets."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from digitrec.data import DATA_DIR_ENV, DataFile, DatasetInfo

MNIST_FIXTURES = {"mnist", "mnist_dir"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``mnist`` every test that reads the real MNIST through its fixtures (directly or
    through another fixture), so ``-m "not mnist"`` selects exactly the tests that need no MNIST."""
    for item in items:
        if MNIST_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.mnist)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own empty user cache, so none reads or writes the real one."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST files (as in CI), or skip."""
    directory = os.environ.get(DATA_DIR_ENV)
    if not directory or not Path(directory, "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"needs the real MNIST: set {DATA_DIR_ENV}")
    return Path(directory)


@pytest.fixture(scope="session")
def mnist(mnist_dir: Path):
    """The real MNIST, loaded once per session."""
    from digitrec.data import load_dataset

    return load_dataset("mnist", mnist_dir, download=False, progress=False)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file (magic 0x0801 for 1-D, 0x0803 for 3-D)."""
    header = (0x0800 + array.ndim).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_tiny_dataset(directory: Path, n_train: int = 60, n_test: int = 20, seed: int = 0):
    """Write a small random dataset's four gzip IDX files; return its table entry."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for part, array in arrays.items():
        name = f"tiny-{part.replace('_', '-')}-idx{array.ndim}-ubyte"
        content = idx_bytes(array)
        (directory / f"{name}.gz").write_bytes(gzip.compress(content))
        files[part] = DataFile(name, hashlib.sha256(content).hexdigest(), len(array))
    info = DatasetInfo(
        name="tiny",
        class_names=tuple(str(d) for d in range(10)),
        files=files,
        mirrors=("http://127.0.0.1:9/unreachable/",),
    )
    return info, arrays


@pytest.fixture
def tiny(tmp_path: Path):
    """A small random dataset in tmp_path/tiny: (DatasetInfo, directory, arrays)."""
    info, arrays = write_tiny_dataset(tmp_path / "tiny")
    return info, tmp_path / "tiny", arrays


@pytest.fixture
def tiny_registered(tiny, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny dataset registered under its name (so runs can name it); its directory."""
    from digitrec.data import DATASETS

    info, directory, _ = tiny
    monkeypatch.setitem(DATASETS, info.name, info)
    return directory


REAL_SETS = Path(__file__).resolve().parents[2] / "shared" / "realdigits"


@pytest.fixture(scope="session")
def real_sets() -> Path:
    """The real handwriting sets (CVL, ORAND-CAR-A) beside the project, or skip."""
    from digitrec.realdigits import REAL_DIR_ENV

    folder = Path(os.environ.get(REAL_DIR_ENV) or REAL_SETS)
    if not (folder / "cvl").is_dir():
        pytest.skip(
            f"needs the real handwriting sets: set {REAL_DIR_ENV} (or ../shared/realdigits)"
        )
    return folder
