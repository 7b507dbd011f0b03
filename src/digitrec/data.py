"""Datasets: a table of known datasets, and finding, downloading, verifying and reading their IDX files.

Search order for each file: the data directory (``--data-dir`` or ``DIGITREC_DATA_DIR``, never
written to; its ``<dataset>/`` subfolder first, then itself), the user cache (``$XDG_CACHE_HOME/digitrec/<dataset>``), the dataset's system
directories (e.g. Debian's ``/usr/share/datasets/fashion-mnist``), and last a download from the
dataset's mirrors into the cache. Every file is verified by the SHA256 of its uncompressed content.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitrec.errors import DataError, DigitrecError

DATA_DIR_ENV = "DIGITREC_DATA_DIR"
OFFLINE_ENV = "DIGITREC_OFFLINE"  # set to 1 to never download
PARTS = ("train_images", "train_labels", "test_images", "test_labels")
IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}  # labels (N,), images (N, rows, cols); uint8


@dataclass(frozen=True)
class DataFile:
    """One IDX file of a dataset: its name (without ``.gz``) and the SHA256 of its content."""

    name: str
    sha256: str
    count: int


@dataclass(frozen=True)
class DatasetInfo:
    """Everything the project knows about a dataset: files, checksums, mirrors, class names."""

    name: str
    class_names: tuple[str, ...]
    files: dict[str, DataFile]
    mirrors: tuple[str, ...]
    source: str = ""  # who made it and on what terms, for run records and model cards
    system_dirs: tuple[str, ...] = ()
    image_shape: tuple[int, int] = (28, 28)


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        class_names=tuple(str(d) for d in range(10)),
        files={
            "train_images": DataFile(
                "train-images-idx3-ubyte",
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                60000,
            ),
            "train_labels": DataFile(
                "train-labels-idx1-ubyte",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                60000,
            ),
            "test_images": DataFile(
                "t10k-images-idx3-ubyte",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                10000,
            ),
            "test_labels": DataFile(
                "t10k-labels-idx1-ubyte",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                10000,
            ),
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://yann.lecun.com/exdb/mnist/",
        ),
        source=(
            "MNIST database of handwritten digits (Y. LeCun, C. Cortes, C. J. C. Burges), made "
            "from NIST Special Databases 1 and 3; Creative Commons Attribution-Share Alike 3.0"
        ),
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        files={
            "train_images": DataFile(
                "train-images-idx3-ubyte",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                60000,
            ),
            "train_labels": DataFile(
                "train-labels-idx1-ubyte",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                60000,
            ),
            "test_images": DataFile(
                "t10k-images-idx3-ubyte",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                10000,
            ),
            "test_labels": DataFile(
                "t10k-labels-idx1-ubyte",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                10000,
            ),
        },
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        ),
        source="Fashion-MNIST (Zalando Research; Xiao, Rasul and Vollgraf, 2017); MIT License",
        system_dirs=("/usr/share/datasets/fashion-mnist",),
    ),
}


@dataclass(frozen=True)
class FileStatus:
    """Where one file was found and its verified checksum."""

    part: str
    path: Path
    sha256: str
    source: str  # "data-dir", "cache", "system" or "download"


@dataclass
class Dataset:
    """A loaded dataset: uint8 images (N, 28, 28), uint8 labels (N,), and where they came from."""

    info: DatasetInfo
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    files: dict[str, FileStatus] = field(default_factory=dict)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    @property
    def checksums(self) -> dict[str, str]:
        return {self.info.files[p].name: s.sha256 for p, s in self.files.items()}


def dataset_info(name: str) -> DatasetInfo:
    """The table entry for a dataset name, or a clear error listing the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def cache_dir(dataset: str) -> Path:
    """The per-user cache directory for a dataset (XDG base directory spec)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "digitrec" / dataset


def read_idx(path: Path, expected: DataFile | None = None) -> tuple[np.ndarray, str]:
    """Read a gzip or raw IDX file into a uint8 array; return it with its content SHA256.

    Validates the magic number, dimensions and size, and, when ``expected`` is given, the
    checksum and item count. Every failure is a ``DataError`` naming the file.
    """
    content = _decompressed_bytes(path)
    digest = hashlib.sha256(content).hexdigest()
    if expected is not None and digest != expected.sha256:
        raise DataError(
            f"{path}: checksum mismatch: content SHA256 is {digest}, expected {expected.sha256} "
            f"({expected.name})"
        )
    array = _parse_idx(content, path)
    if expected is not None and len(array) != expected.count:
        raise DataError(f"{path}: holds {len(array)} items, expected {expected.count}")
    return array, digest


def _decompressed_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip file ({exc})") from None


def _parse_idx(content: bytes, path: Path) -> np.ndarray:
    if len(content) < 8:
        raise DataError(f"{path}: too short to be an IDX file ({len(content)} bytes)")
    magic = int.from_bytes(content[:4], "big")
    ndim = magic & 0xFF
    if IDX_MAGIC.get(ndim) != magic:
        raise DataError(
            f"{path}: wrong IDX header: magic 0x{magic:08x}, expected 0x{IDX_MAGIC[1]:08x} "
            f"(labels) or 0x{IDX_MAGIC[3]:08x} (images)"
        )
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(dims))
    if len(content) != header + size:
        raise DataError(
            f"{path}: header says {dims} ({header + size} bytes) but the file has "
            f"{len(content)} bytes: truncated or padded"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(dims)


def _data_dir(data_dir: str | Path | None) -> Path | None:
    chosen = data_dir or os.environ.get(DATA_DIR_ENV)
    return Path(chosen) if chosen else None


def _search_dirs(info: DatasetInfo, data_dir: Path | None) -> list[tuple[str, Path]]:
    dirs = [("data-dir", data_dir / info.name), ("data-dir", data_dir)] if data_dir else []
    dirs.append(("cache", cache_dir(info.name)))
    dirs += [("system", Path(d)) for d in info.system_dirs]
    return dirs


def existing_copies(info: DatasetInfo, part: str, data_dir: Path | None) -> list[tuple[str, Path]]:
    """Every copy of one file (``.gz`` or raw) in the search order, with where it was found."""
    name = info.files[part].name
    return [
        (source, directory / filename)
        for source, directory in _search_dirs(info, data_dir)
        for filename in (name + ".gz", name)
        if (directory / filename).is_file()
    ]


def download_file(
    info: DatasetInfo, part: str, failures: list[str], progress: bool = True
) -> Path | None:
    """Download one file into the cache from the first mirror that gives a verified copy.

    The download goes to a temporary file in the cache that is renamed into place only after
    its checksum verifies; a copy that fails verification is moved aside as ``*.bad``. Each
    failed attempt is appended to ``failures``; None if no mirror gave a good copy.
    """
    expected = info.files[part]
    target_dir = cache_dir(info.name)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / (expected.name + ".gz")
    for mirror in info.mirrors:
        url = mirror + expected.name + ".gz"
        try:
            tmp = _fetch(url, target_dir, progress)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            failures.append(f"{url}: {exc}")
            continue
        try:
            read_idx(tmp, expected)
        except DataError as exc:
            bad = target.with_suffix(".gz.bad")
            os.replace(tmp, bad)
            failures.append(f"{url}: {exc} (moved aside to {bad})")
            continue
        os.replace(tmp, target)
        return target
    return None


def _fetch(url: str, directory: Path, progress: bool) -> Path:
    from tqdm import tqdm

    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=".download-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=30) as response,
            tqdm(
                total=int(response.headers.get("Content-Length") or 0) or None,
                unit="B",
                unit_scale=True,
                desc=url.rsplit("/", 1)[-1],
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(1 << 16):
                out.write(chunk)
                bar.update(len(chunk))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _missing_message(info: DatasetInfo, parts: Sequence[str], failures: Sequence[str]) -> str:
    names = ", ".join(info.files[p].name + ".gz" for p in parts)
    lines = [
        f"{info.name}: could not find or download {names}.",
        f"Put the files (gzip or raw IDX) in a directory and set {DATA_DIR_ENV}=DIR "
        f"(or pass --data-dir DIR), or connect to the internet to download them into "
        f"{cache_dir(info.name)}.",
    ]
    lines += [f"  {f}" for f in failures]
    return "\n".join(lines)


def _read_part(
    info: DatasetInfo,
    part: str,
    data_dir: Path | None,
    download: bool,
    progress: bool,
    problems: list[str],
) -> tuple[np.ndarray, FileStatus] | None:
    """The first copy of one file that verifies, downloading if allowed; problems are noted."""
    expected = info.files[part]
    for source, path in existing_copies(info, part, data_dir):
        try:
            array, digest = read_idx(path, expected)
        except DataError as exc:
            problems.append(str(exc))
            continue
        return array, FileStatus(part, path, digest, source)
    if not download or os.environ.get(OFFLINE_ENV) == "1":
        problems.append(f"{expected.name}.gz: downloads disabled")
        return None
    path = download_file(info, part, problems, progress)
    if path is None:
        return None
    array, digest = read_idx(path, expected)
    return array, FileStatus(part, path, digest, "download")


def load_dataset(
    dataset: str | DatasetInfo = "mnist",
    data_dir: str | Path | None = None,
    download: bool = True,
    progress: bool = True,
) -> Dataset:
    """Find (or download), verify and read all four files of a dataset.

    A copy that fails verification is passed over for the next one in the search order; if no
    good copy of a file can be had, one error lists every file missing and every problem met.
    """
    info = dataset if isinstance(dataset, DatasetInfo) else dataset_info(dataset)
    directory = _data_dir(data_dir)
    problems: list[str] = []
    found = {
        part: _read_part(info, part, directory, download, progress, problems) for part in PARTS
    }
    missing = [part for part, hit in found.items() if hit is None]
    if missing:
        raise DataError(_missing_message(info, missing, problems))
    arrays = {part: hit[0] for part, hit in found.items()}  # type: ignore[index]
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[1:] != info.image_shape or len(images) != len(labels):
            raise DataError(
                f"{info.name} {split}: images {images.shape} do not match labels {labels.shape}"
            )
    statuses = {part: hit[1] for part, hit in found.items()}  # type: ignore[index]
    return Dataset(info=info, files=statuses, **arrays)


def as_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1], the models' input."""
    return (np.asarray(images, dtype=np.float32) / 255.0)[..., None]


def split_validation(
    images: np.ndarray, labels: np.ndarray, val_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out the last ``val_size`` training examples as the validation split."""
    if not 0 <= val_size < len(images):
        raise DataError(f"validation size {val_size} must be in [0, {len(images)})")
    cut = len(images) - val_size
    return images[:cut], labels[:cut], images[cut:], labels[cut:]


def subset_dataset(data: Dataset, subset: int | None, val_size: int) -> Dataset:
    """Keep the first ``subset`` training images and the validation split (the last ``val_size``)."""
    if subset is None:
        return data
    available = len(data.train_images) - val_size
    if not 0 < subset <= available:
        raise DigitrecError(f"--subset must be in [1, {available}] (images before validation)")
    keep = np.r_[0:subset, available : len(data.train_images)]
    return Dataset(
        data.info, data.train_images[keep], data.train_labels[keep], data.test_images,
        data.test_labels, data.files,
    )  # fmt: skip
