"""Atomic writes: a file or folder appears under its final name complete, or not at all.

The temporary beside the final name is ``.<name>.tmp-<pid>@<host>-<random>``, so that one left
behind by a killed process can be recognised as ours and as abandoned
(``remove_stale_temporaries``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from digitrec.errors import DigitrecError

# A temporary of ours is abandoned once its process has ended, or this long after its last change
# whoever made it (a process on another machine sharing the folder, or an older digitrec).
STALE_AFTER_SECONDS = 24 * 3600
FOREIGN_SHOWN = 3  # entries named when a folder is refused for holding what is not ours


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _absolute(path: Path) -> Path:
    """``path`` made absolute with ``.`` and ``..`` resolved, so that it has a name and a parent
    (symbolic links are kept: a link is not what it points to)."""
    return Path(os.path.abspath(path))


def _temporary_prefix(final: Path) -> str:
    return f".{final.name}.tmp-{os.getpid()}@{socket.gethostname()}-"


@contextmanager
def atomic_path(final: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it into place if the block succeeds.

    ``suffix`` keeps an extension on the temporary name for writers that check it (Keras
    insists on ``.keras``). On any exception the temporary file is removed.
    """
    final = _absolute(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=_temporary_prefix(final), suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o666 & ~_current_umask())  # mkstemp makes it private; give it a new file's mode
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(final: Path, replace: bool = False) -> Iterator[Path]:
    """Yield a new temporary directory beside ``final``; if the block succeeds it takes the name
    ``final``, else it is deleted.

    An empty folder ``final`` is replaced. Anything else under that name is replaced only with
    ``replace`` (the caller has checked it is its own, and it must be a folder), and only once
    the new folder is complete; otherwise ``DigitrecError``, before the block runs if it is
    already there.
    """
    final = _absolute(final)
    _check_replaceable(final, replace)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=_temporary_prefix(final)))
    tmp.chmod(0o777 & ~_current_umask())
    try:
        yield tmp
        _check_replaceable(final, replace)
        _swap_in(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _is_empty_directory(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def _check_replaceable(final: Path, replace: bool) -> None:
    if not os.path.lexists(final) or _is_empty_directory(final):
        return
    if not replace:
        raise DigitrecError(f"{final} already exists and is not empty; not replacing it")
    if final.is_symlink() or not final.is_dir():
        raise DigitrecError(f"{final} is not a folder; not replacing it")


def _swap_in(new: Path, final: Path) -> None:
    """Rename ``new`` to ``final``; a non-empty ``final`` is first moved aside (under a temporary
    name), put back if the rename fails, and deleted only once ``new`` is in place."""
    if not os.path.lexists(final) or _is_empty_directory(final):
        os.replace(new, final)
        return
    old = Path(tempfile.mkdtemp(dir=final.parent, prefix=_temporary_prefix(final)))
    os.replace(final, old)
    try:
        os.replace(new, final)
    except OSError:
        os.replace(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Delete the temporaries of ``final`` left by writes that never finished; return them.

    Only names of our pattern are considered, and only abandoned ones are deleted: their process
    (named in them) has ended on this machine, or they have not changed for a day.
    """
    final = _absolute(final)
    if not final.parent.is_dir():
        return []
    pattern = re.compile(
        rf"\.{re.escape(final.name)}\.tmp-(?:(?P<pid>\d+)@(?P<host>.+)-)?[a-z0-9_]+(?:\.\w+)?"
    )
    removed = []
    for entry in final.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and _abandoned(entry, match):
            _remove(entry)
            removed.append(entry)
    return removed


def _abandoned(entry: Path, match: re.Match[str]) -> bool:
    try:
        age = time.time() - entry.lstat().st_mtime
    except FileNotFoundError:  # another process finished or cleaned it meanwhile
        return False
    if age > STALE_AFTER_SECONDS:
        return True
    owner = match["pid"]
    return owner is not None and match["host"] == socket.gethostname() and not _running(int(owner))


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (assumed so where it cannot be asked)."""
    if os.name == "nt":  # os.kill would terminate it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def check_only_ours(folder: Path, ours: Callable[[Path], bool], what: str, advice: str) -> None:
    """Refuse (``DigitrecError``) a folder holding anything that ``ours`` does not recognise as
    part of ``what``: a write there could replace a user's file of the same name. The message
    names a few of those entries, then gives ``advice``; nothing is touched."""
    if not folder.is_dir():
        return
    foreign = sorted(entry.name for entry in folder.iterdir() if not ours(entry))
    if foreign:
        more = f" and {len(foreign) - FOREIGN_SHOWN} more" if len(foreign) > FOREIGN_SHOWN else ""
        raise DigitrecError(
            f"{folder} holds files that are not part of {what} "
            f"({', '.join(foreign[:FOREIGN_SHOWN])}{more}); {advice}"
        )


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically, pretty-printed."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
