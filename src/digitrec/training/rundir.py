"""Run directories: their layout, where a new one may be made, and making one so that a run
failing before its first checkpoint takes back what it added."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from itertools import takewhile
from pathlib import Path

from digitrec.errors import DigitrecError
from digitrec.files import check_only_ours

RUNS_DIR = Path("runs")
STATE_FILE = "state.json"  # the last completed epoch and its checkpoint
CHECKPOINT_DIR = "checkpoints"
MEMBERS_DIR = "members"  # an ensemble run's members, each a run directory of its own


def check_new_run_dir(run_dir: Path) -> None:
    """Refuse, before any work, a run directory that holds a run, holds anything else (a run
    would replace a user's files of its names: ``model.keras``, ``metrics.json``, ...), or
    cannot be made."""
    if (run_dir / "run.json").exists():
        raise DigitrecError(f"{run_dir} already holds a run; resume it with --resume {run_dir}")
    check_only_ours(
        run_dir,
        lambda entry: False,
        "a digitrec run",
        "a run starts in a new or empty folder: choose another --out",
    )
    existing = next(path for path in (run_dir, *run_dir.parents) if path.exists())
    if not existing.is_dir():
        raise DigitrecError(f"cannot make run directory {run_dir}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DigitrecError(f"cannot make run directory {run_dir}: {existing} is not writable")


@contextmanager
def new_run_dir(run_dir: Path) -> Iterator[None]:
    """Make the run directory for the block; if the block fails before the run's first
    checkpoint, remove what it added and the folders made for it, never what was there before."""
    made = list(takewhile(lambda path: not path.exists(), (run_dir, *run_dir.parents)))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(made)
        raise DigitrecError(f"cannot make run directory {run_dir}: {exc.strerror}") from None
    before = set(run_dir.iterdir())
    try:
        yield
    except BaseException:
        if not has_checkpoint(run_dir):
            for path in set(run_dir.iterdir()) - before:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            _remove_empty(made)
        raise


def _remove_empty(folders: list[Path]) -> None:
    """Remove the given folders, innermost first, where they exist and are empty."""
    for folder in folders:
        with suppress(OSError):
            folder.rmdir()


def has_checkpoint(run_dir: Path) -> bool:
    """Whether a run (or a member of an ensemble run) has saved an epoch."""
    return (run_dir / STATE_FILE).exists() or any((run_dir / MEMBERS_DIR).glob(f"*/{STATE_FILE}"))
