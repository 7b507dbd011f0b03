"""The real handwriting sets: found, verified and normalized as users' crops, or a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digitrec.errors import DataError
from digitrec.realdigits import REAL_DIR_ENV, load_cvl, orand_folder, real_dir


def test_cvl_parts_are_normalized_like_users_crops(real_sets: Path) -> None:
    part = load_cvl("valid", real_sets)
    assert part.images.shape == (7000, 28, 28) and part.images.dtype == np.uint8
    assert sorted(np.unique(part.labels)) == list(range(10))
    assert len(np.unique(part.writers)) == 60
    # White ink on black, centred by mass as MNIST is: the border is background.
    assert part.images[:, 0, :].max() == 0 and part.images.max() == 255
    train = load_cvl("train", real_sets)
    assert not set(np.unique(train.writers)) & set(np.unique(part.writers))


def test_orand_folder_is_found(real_sets: Path) -> None:
    assert (orand_folder(real_sets) / "train").is_dir()


def test_missing_or_wrong_sets_are_clear_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(REAL_DIR_ENV, raising=False)
    with pytest.raises(DataError, match=REAL_DIR_ENV):
        real_dir()
    with pytest.raises(DataError, match="no such folder"):
        real_dir(tmp_path / "absent")
    with pytest.raises(DataError, match="unknown CVL part"):
        load_cvl("test", tmp_path)
    with pytest.raises(DataError, match="no such file"):
        load_cvl("train", tmp_path)
    (tmp_path / "cvl").mkdir()
    np.savez(tmp_path / "cvl" / "cvl_train.npz", x=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DataError, match="MD5"):
        load_cvl("train", tmp_path)
    with pytest.raises(DataError, match="ORAND"):
        orand_folder(tmp_path)
