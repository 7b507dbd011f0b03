"""Reading one file as a worker process or a Ray actor does: the settings each is handed,
the model it loads once, and a file's result or its error."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from digitrec.errors import DigitrecError
from digitrec.read.options import ReadOptions
from digitrec.read.recognizer import DEFAULT_LINES, Recognizer

Result = tuple[dict[str, Any], list[np.ndarray]]  # a file's result and the inputs the model saw


@dataclass(frozen=True)
class ReadSettings:
    """How each image is read; handed to every worker process and Ray actor."""

    model: str = "default"
    lines: str | None = DEFAULT_LINES  # the page reader's line model (Recognizer.load)
    options: ReadOptions = field(default_factory=ReadOptions)  # how each image is read
    threads: int | None = None  # ONNX Runtime threads; 1 per worker unless set
    keep_normalized: bool = False  # send back the 28×28 inputs, for --save-normalized


def read_file(recognizer: Recognizer, file: str, settings: ReadSettings) -> Result:
    """One file's result (its reading, or the error that kept it from being read), and the
    28×28 inputs the model saw if the settings keep them."""
    try:
        with warnings.catch_warnings():
            # Pillow's own remarks on a malformed file repeat the error its line reports.
            warnings.filterwarnings("ignore", module="PIL")
            reading = recognizer.read(file, options=settings.options)
        result = {**unread_result(file), **reading.to_dict()}
    except DigitrecError as exc:
        return unread_result(file, str(exc)), []
    except Exception as exc:  # a bug met on this file: its error, and the run goes on
        return unread_result(file, internal_error(exc)), []
    return result, reading.normalized if settings.keep_normalized else []


def internal_error(exc: Exception) -> str:
    """The error line of a file on which reading failed unexpectedly (a bug, not the file's
    fault): marked as such, with the exception's type and message."""
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return f"internal error while reading it ({name}: {exc}); please report it"


def unread_result(file: str, error: str | None = None) -> dict[str, Any]:
    """A file's result with nothing read (yet)."""
    return {"file": file, "text": "", "digits": [], "lines": [], "error": error}


def worker_recognizer(settings: ReadSettings) -> Recognizer:
    """The model as a worker process or Ray actor loads it: one thread unless told otherwise,
    since the workers share the cores."""
    import cv2

    cv2.setNumThreads(1)
    return Recognizer.load(settings.model, threads=settings.threads or 1, lines=settings.lines)
