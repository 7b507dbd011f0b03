"""Finding, downloading, verifying and reading IDX datasets."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import idx_bytes, write_tiny_dataset

from digitrec.data import (
    DATA_DIR_ENV,
    PARTS,
    cache_dir,
    load_dataset,
    read_idx,
    split_validation,
)
from digitrec.errors import DataError


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir()}


def test_reads_gzip_files_into_the_arrays_written(tiny):
    info, directory, arrays = tiny
    data = load_dataset(info, directory, download=False, progress=False)
    for part in PARTS:
        np.testing.assert_array_equal(getattr(data, part), arrays[part])
        assert data.files[part].source == "data-dir"


def test_raw_and_recompressed_copies_verify_by_content(tiny, tmp_path):
    info, _, arrays = tiny
    other = tmp_path / "other"
    other.mkdir()
    for part in PARTS:
        content = idx_bytes(arrays[part])
        name = info.files[part].name
        if part.endswith("images"):
            (other / name).write_bytes(content)  # raw IDX
        else:
            (other / f"{name}.gz").write_bytes(gzip.compress(content, compresslevel=1))
    data = load_dataset(info, other, download=False, progress=False)
    np.testing.assert_array_equal(data.test_images, arrays["test_images"])


def test_wrong_magic_names_the_file_and_the_expected_header(tmp_path):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes((0x0000_0999).to_bytes(4, "big") + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(DataError, match=r"bad-idx1-ubyte: wrong IDX header.*0x00000801"):
        read_idx(path)


def test_truncated_gzip_is_reported(tiny):
    info, directory, _ = tiny
    path = directory / f"{info.files['train_images'].name}.gz"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        load_dataset(info, directory, download=False, progress=False)


def test_truncated_raw_idx_is_reported(tmp_path):
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-10])
    with pytest.raises(DataError, match="truncated or padded"):
        read_idx(path)


def test_checksum_mismatch_names_file_and_expected_digest(tiny):
    info, directory, arrays = tiny
    changed = arrays["test_labels"].copy()
    changed[0] = (changed[0] + 1) % 10
    target = directory / f"{info.files['test_labels'].name}.gz"
    target.write_bytes(gzip.compress(idx_bytes(changed)))
    expected = info.files["test_labels"].sha256
    with pytest.raises(DataError, match=f"{target.name}: checksum mismatch.*expected {expected}"):
        load_dataset(info, directory, download=False, progress=False)


def test_read_only_data_directory_is_never_written(tiny):
    info, directory, _ = tiny
    before = snapshot(directory)
    os.chmod(directory, 0o555)
    try:
        load_dataset(info, directory, progress=False)
    finally:
        os.chmod(directory, 0o755)
    assert snapshot(directory) == before


def test_offline_cache_miss_names_the_variable_and_files(tmp_path):
    info, _ = write_tiny_dataset(tmp_path / "elsewhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as caught:
        load_dataset(info, empty, progress=False)
    message = str(caught.value)
    assert DATA_DIR_ENV in message
    assert all(f.name + ".gz" in message for f in info.files.values())
    assert "http://127.0.0.1:9/unreachable/" in message  # a download was tried and failed
    assert list(cache_dir(info.name).rglob("*")) == []  # and left nothing in the cache


def test_download_verifies_and_moves_a_bad_copy_aside(tmp_path):
    info, arrays = write_tiny_dataset(tmp_path / "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    for data_file in info.files.values():  # same names, wrong content
        (bad / f"{data_file.name}.gz").write_bytes(gzip.compress(b"not an idx file at all"))
    mirrored = replace(info, mirrors=(f"file://{bad}/", f"file://{tmp_path / 'good'}/"))
    data = load_dataset(mirrored, tmp_path / "nowhere", progress=False)
    np.testing.assert_array_equal(data.train_labels, arrays["train_labels"])
    cache = cache_dir(info.name)
    assert {f.source for f in data.files.values()} == {"download"}
    assert sorted(p.name for p in cache.glob("*.bad")) == sorted(
        f"{f.name}.gz.bad" for f in info.files.values()
    )
    assert not list(cache.glob(".download-*"))
    assert load_dataset(mirrored, None, progress=False).files["test_images"].source == "cache"


def test_download_with_only_bad_mirrors_leaves_nothing_under_the_final_name(tmp_path):
    info, _ = write_tiny_dataset(tmp_path / "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    for data_file in info.files.values():
        (bad / f"{data_file.name}.gz").write_bytes(b"\x1f\x8b garbage")
    mirrored = replace(info, mirrors=(f"file://{bad}/",))
    with pytest.raises(DataError, match="moved aside"):
        load_dataset(mirrored, None, progress=False)
    assert not list(cache_dir(info.name).glob("*.gz"))


def test_split_validation_holds_out_the_last_images():
    images = np.arange(10)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    labels = np.arange(10, dtype=np.uint8)
    x_train, y_train, x_val, y_val = split_validation(images, labels, 3)
    assert list(y_train) == list(range(7)) and list(y_val) == [7, 8, 9]
    assert len(x_train) == 7 and len(x_val) == 3
    with pytest.raises(DataError):
        split_validation(images, labels, 10)


def test_real_mnist_verifies_with_official_counts(mnist):
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert list(mnist.train_labels[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(mnist.test_labels).tolist()[:3] == [980, 1135, 1032]


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_fashion_mnist_is_found_where_debian_installs_it():
    data = load_dataset("fashion-mnist", download=False, progress=False)
    assert {f.source for f in data.files.values()} == {"system"}
    assert data.class_names[9] == "Ankle boot"
    assert np.bincount(data.test_labels).tolist() == [1000] * 10


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "digitrec", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_cli_offline_miss_is_one_clear_message_without_traceback(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli(
        "data",
        "info",
        "--data-dir",
        str(empty),
        env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "DIGITREC_OFFLINE": "1"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert DATA_DIR_ENV in result.stderr and "train-images-idx3-ubyte.gz" in result.stderr


def test_cli_data_info_lists_files_and_class_counts(mnist_dir):
    result = run_cli("data", "info", "--data-dir", str(mnist_dir))
    assert result.returncode == 0, result.stderr
    assert "all 4 files verified" in result.stdout
    assert "total   60000   10000" in result.stdout


def test_atomic_writes_get_an_ordinary_file_mode(tmp_path):
    from digitrec.files import atomic_directory, atomic_path

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "file.txt") as tmp:
            tmp.write_text("x")
        with atomic_directory(tmp_path / "folder") as tmp:
            (tmp / "inside").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "file.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path):
    from digitrec.files import atomic_path

    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer died")
    assert list(tmp_path.iterdir()) == []
