"""Items made in a worker process while the caller uses them: Python and NumPy work (making
training lines) on one core, TensorFlow on the others, without sharing one interpreter's lock."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from queue import Empty, Full
from typing import Any

from digitrec.errors import DigitrecError

POLL_SECONDS = 1.0  # how often a waiting side checks whether the other one is still there


def in_background(
    produce: Callable[..., Iterable[Any]], *args: Any, ahead: int = 8
) -> Iterator[Any]:
    """The items of ``produce(*args)``, made in a new ("spawn") process up to ``ahead`` items
    before they are taken. ``produce`` and its arguments must pickle (a module-level function),
    and a script that calls this must guard its top level with ``if __name__ == "__main__"``, as
    any multiprocessing script. An exception in the worker is raised here as ``DigitrecError``
    naming it; the worker stops when the iteration does, or when its parent is gone."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue(ahead)
    stop = context.Event()
    worker = context.Process(
        target=_produce, args=(queue, stop, os.getpid(), produce, args), daemon=True
    )
    worker.start()
    try:
        while True:
            try:
                kind, item = queue.get(timeout=POLL_SECONDS)
            except Empty:
                if not worker.is_alive():
                    raise DigitrecError(
                        f"the worker process making items stopped (exit code {worker.exitcode})"
                    ) from None
                continue
            if kind == "end":
                return
            if kind == "error":
                raise DigitrecError(f"the worker process making items failed: {item}")
            yield item
    finally:
        stop.set()
        worker.join(timeout=5 * POLL_SECONDS)
        if worker.is_alive():
            worker.terminate()


def _produce(
    queue: Any, stop: Any, parent: int, produce: Callable[..., Iterable[Any]], args: tuple
) -> None:
    """The worker: every item, then "end"; or the error that stopped it."""
    try:
        for item in produce(*args):
            if not _put(queue, stop, parent, ("item", item)):
                return
        _put(queue, stop, parent, ("end", None))
    except Exception as exc:
        _put(queue, stop, parent, ("error", f"{type(exc).__name__}: {exc}"))


def _put(queue: Any, stop: Any, parent: int, message: tuple[str, Any]) -> bool:
    """Queue a message once there is room; False if the parent stopped or is gone meanwhile."""
    while not stop.is_set() and os.getppid() == parent:
        try:
            queue.put(message, timeout=POLL_SECONDS)
            return True
        except Full:
            continue
    return False
