"""What digitrec writes on stderr besides its errors: progress by one rule (step lines always,
a bar only on a terminal, so that logs and pipes get no bar), and not TensorFlow's log lines
nor two harmless library warnings.

TensorFlow logs through absl before absl's logging is set up, so no environment variable hides
what it prints while it loads (in 2.21: absl's "InitializeLog" warning and the oneDNN notice,
twice): those lines are filtered out of file descriptor 2 while ``tensorflow`` is imported. The
environment hides its later C++ log lines (``TF_CPP_MIN_LOG_LEVEL``), warning filters the rest.
``TF_ENABLE_ONEDNN_OPTS`` is left alone: it changes the numbers, not only the log.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|I\d{4} [\d:.]+ +\d+ \S+:\d+\] "  # absl's INFO lines, such as the oneDNN notice
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"
)
WARNINGS = (
    (FutureWarning, r"In the future `np\.object` will be defined"),  # tf2onnx, for ONNX export
    (UserWarning, r"\s*Warning: tf\.lite\.Interpreter is deprecated"),  # LiteRT parity check
)

_quiet = False


def progress_printer() -> Callable[[str], None]:
    """A function printing each step of a long command on stderr, after the seconds so far."""
    start = time.monotonic()

    def show(message: str) -> None:
        print(f"[{time.monotonic() - start:5.1f} s] {message}", file=sys.stderr, flush=True)

    return show


def bar_shown() -> bool:
    """Whether progress bars are drawn: only when stderr is a terminal."""
    return sys.stderr.isatty()


def quiet_tensorflow() -> None:
    """Hide TensorFlow's log lines and the known warnings from now on in this process.

    Call it before TensorFlow is imported: afterwards neither its loading lines nor its C++ log
    level can be changed. A ``TF_CPP_MIN_LOG_LEVEL`` set by the user is kept.
    """
    global _quiet
    _quiet = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for category, message in WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    if "tensorflow" not in sys.modules and not any(
        isinstance(finder, _QuietImport) for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietImport())


@contextmanager
def filtered_stderr() -> Iterator[None]:
    """Hold back what is written to file descriptor 2 while the block runs, then pass on all
    but the ``NOISE`` lines. Does nothing unless ``quiet_tensorflow`` was called."""
    if not _quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not NOISE.match(line)))
            sys.stderr.flush()


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as the other finders do, and has it loaded in ``filtered_stderr``."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> Any:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteredLoader(spec.loader)
        return spec


class _FilteredLoader(importlib.abc.Loader):
    """Runs another loader's ``exec_module`` in ``filtered_stderr``, then steps aside."""

    def __init__(self, loader: Any):
        self.loader = loader

    def create_module(self, spec: Any) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        with filtered_stderr():
            self.loader.exec_module(module)
