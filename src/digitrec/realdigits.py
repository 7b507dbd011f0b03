"""Real handwriting that is not a download: CVL's single digits and ORAND-CAR-A's cheque amounts.

They are found in a folder named by ``DIGITREC_REAL_DIR`` (or given), laid out as
``cvl/cvl_train.npz``, ``cvl/cvl_valid.npz`` and ``orand_car_a/labels.csv`` + ``train/``, and
verified by their MD5. Nothing here is needed to read: only training and measuring use them.

- CVL Single Digit database (Computer Vision Lab, TU Wien; the ICDAR 2013 Handwritten Digit
  Recognition competition, Diem et al.): 28×28 grey digits, dark ink on white, not centred. The
  train part (67 writers) is for training, the valid part (60 other writers) for choosing.
- ORAND-CAR-A (ORAND S.A.; ICFHR 2014 digit-string competition): courtesy amounts cut from real
  cheques, labels of digits only.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitrec.errors import DataError

REAL_DIR_ENV = "DIGITREC_REAL_DIR"
CVL_SPLITS = ("train", "valid")
CVL_MD5 = {
    "train": "eda3adb78dce2ac6d16a48fe90ac5c61",
    "valid": "12b28ca8d20aaa4b875bace7a04b5683",
}
CVL_SOURCE = (
    "CVL Single Digit database (Computer Vision Lab, TU Wien), as prepared for the ICDAR 2013 "
    "Handwritten Digit Recognition competition (Diem et al., ICDAR 2013); distributed by TU Wien "
    "for research"
)
ORAND_FOLDER = "orand_car_a"


@dataclass(frozen=True)
class CvlPart:
    """One part of CVL: ``images`` (N, 28, 28) uint8 white ink on black, each normalized as the
    classifier normalizes a user's crop (``read.imaging.normalize_digit``), ``labels`` and the
    ``writers`` who wrote them."""

    images: np.ndarray
    labels: np.ndarray
    writers: np.ndarray


def real_dir(root: str | Path | None = None) -> Path:
    """The folder of the real sets: ``root``, else ``$DIGITREC_REAL_DIR``; a ``DataError`` if
    neither names a folder."""
    chosen = root or os.environ.get(REAL_DIR_ENV)
    if not chosen:
        raise DataError(
            f"the real handwriting sets are not downloadable: set {REAL_DIR_ENV} to the folder "
            "holding cvl/ and orand_car_a/"
        )
    folder = Path(chosen)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (the real handwriting sets, {REAL_DIR_ENV})")
    return folder


def load_cvl(split: str, root: str | Path | None = None) -> CvlPart:
    """CVL's ``train`` or ``valid`` part, verified, normalized like users' crops."""
    from digitrec.read.imaging import normalize_digit

    if split not in CVL_SPLITS:
        raise DataError(f"unknown CVL part {split!r}; known: {', '.join(CVL_SPLITS)}")
    path = real_dir(root) / "cvl" / f"cvl_{split}.npz"
    if not path.is_file():
        raise DataError(f"{path}: no such file (CVL's {split} part)")
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    if digest != CVL_MD5[split]:
        raise DataError(f"{path}: MD5 {digest}, expected {CVL_MD5[split]}: not CVL's {split} part")
    with np.load(path) as part:
        grey, labels, writers = part["x"], part["y"], part["writer"]
    ink = 255.0 - grey.astype(np.float32)
    images = np.stack([normalize_digit(digit) for digit in ink])
    return CvlPart(np.round(images * 255).astype(np.uint8), labels.astype(np.uint8), writers)


def orand_folder(root: str | Path | None = None) -> Path:
    """ORAND-CAR-A's folder (``labels.csv`` with ``file,text,boxes``; the images in ``train/``)."""
    folder = real_dir(root) / ORAND_FOLDER
    if not (folder / "labels.csv").is_file():
        raise DataError(f"{folder}/labels.csv: no such file (ORAND-CAR-A)")
    return folder
