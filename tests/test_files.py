"""Atomic writes: what a folder write may replace, and the temporaries a killed writer leaves."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from digitrec.errors import DigitrecError
from digitrec.files import (
    STALE_AFTER_SECONDS,
    atomic_directory,
    atomic_path,
    remove_stale_temporaries,
)


def user_folder(path):
    """A folder of someone's own files, and a snapshot to compare it with later."""
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    (path / "sub").mkdir()
    (path / "sub" / "data.csv").write_text("1,2\n")
    return path, snapshot(path)


def snapshot(path):
    return {
        str(p.relative_to(path)): p.read_bytes() if p.is_file() else None
        for p in sorted(path.rglob("*"))
    }


def test_atomic_directory_refuses_a_non_empty_folder_before_writing(tmp_path):
    folder, before = user_folder(tmp_path / "out")
    ran = False
    with pytest.raises(DigitrecError, match="already exists and is not empty"):  # noqa: SIM117
        with atomic_directory(folder):
            ran = True
    assert not ran and snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_directory_refuses_a_folder_that_appears_while_writing(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(DigitrecError, match="already exists"), atomic_directory(final) as tmp:
        (tmp / "new").write_text("new")
        _, before = user_folder(final)
    assert snapshot(final) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_directory_fills_an_empty_folder(tmp_path):
    (tmp_path / "out").mkdir()
    with atomic_directory(tmp_path / "out") as tmp:
        (tmp / "new").write_text("new")
    assert snapshot(tmp_path / "out") == {"new": b"new"}


def test_atomic_directory_replaces_a_folder_when_told_and_only_once_complete(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(final, replace=True) as tmp:
        (tmp / "half").write_text("half")
        raise RuntimeError("writer died")
    assert snapshot(final) == {"old": b"old"}
    with atomic_directory(final, replace=True) as tmp:
        (tmp / "new").write_text("new")
    assert snapshot(final) == {"new": b"new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_directory_never_replaces_a_file_or_a_link(tmp_path):
    (tmp_path / "file").write_text("mine")
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "keep").write_text("mine")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    for name in ("file", "link"):
        with pytest.raises(DigitrecError, match="is not a folder"):  # noqa: SIM117
            with atomic_directory(tmp_path / name, replace=True):
                pass
    assert (tmp_path / "file").read_text() == "mine"
    assert (tmp_path / "link").is_symlink() and (tmp_path / "target" / "keep").exists()


def test_atomic_directory_of_the_working_folder_has_a_name_and_a_parent(tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    with atomic_directory(tmp_path / "here" / ".." / "new") as tmp:
        (tmp / "x").write_text("x")
    assert (tmp_path / "new" / "x").read_text() == "x"


def killed_writer(final, kind):
    """Run a process that dies (SIGKILL) inside an atomic write of ``final``."""
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from digitrec.files import atomic_directory, atomic_path\n"
        f"with {kind}(Path(sys.argv[1])) as tmp:\n"
        "    (tmp / 'half').write_text('x') if tmp.is_dir() else tmp.write_text('x')\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    process = subprocess.run([sys.executable, "-c", code, str(final)], check=False)
    assert process.returncode == -9


@pytest.mark.parametrize("kind", ["atomic_path", "atomic_directory"])
def test_a_killed_writers_temporary_is_removed_by_the_next_cleanup(tmp_path, kind):
    final = tmp_path / "model.onnx"
    killed_writer(final, kind)
    left = list(tmp_path.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".model.onnx.tmp-")
    assert remove_stale_temporaries(final) == left
    assert list(tmp_path.iterdir()) == []


def test_cleanup_keeps_live_writers_other_names_and_what_is_not_ours(tmp_path):
    final = tmp_path / "model.onnx"
    host = socket.gethostname()
    kept = [
        f".model.onnx.tmp-{os.getpid()}@{host}-abcd1234.onnx",  # this process: still writing
        f".model.onnx.tmp-{dead_pid()}@other-host-abcd1234",  # a process on another machine
        ".model.onnx.tmp-abcd1234.onnx",  # an older digitrec's, changed recently
        f".other.onnx.tmp-{dead_pid()}@{host}-abcd1234",  # another file's
        "model.onnx.tmp-abcd1234",  # not hidden: not our pattern
        ".model.onnx.tmp-",  # nor this
        "notes.txt",
    ]
    for name in kept:
        (tmp_path / name).write_text("x")
    old = tmp_path / ".model.onnx.tmp-1@other-host-abcd1234"  # untouched for over a day
    old.mkdir()
    (old / "inside").write_text("x")
    past = time.time() - STALE_AFTER_SECONDS - 60
    os.utime(old, (past, past))
    assert remove_stale_temporaries(final) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_atomic_path_names_its_temporary_after_its_process(tmp_path):
    with atomic_path(tmp_path / "file.txt", suffix=".txt") as tmp:
        assert tmp.name.startswith(f".file.txt.tmp-{os.getpid()}@{socket.gethostname()}-")
        assert tmp.suffix == ".txt"
        assert remove_stale_temporaries(tmp_path / "file.txt") == []
        tmp.write_text("x")
    assert (tmp_path / "file.txt").read_text() == "x"
