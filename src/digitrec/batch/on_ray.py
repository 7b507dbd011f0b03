"""Reading many image files on Ray: the paths become a dataset, read by a pool of actors that
each load the model once; their results come back to this process to be written.

Each actor reads the files itself, so a bad file becomes a result with its ``error`` like in a
worker process. The model and the images must be at the same paths on every node (a shared
filesystem), or the model be the one shipped in the package (``default``). A local instance
reports no usage statistics.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from digitrec.batch.worker import ReadSettings, Result, read_file, worker_recognizer
from digitrec.errors import DigitrecError
from digitrec.read.recognizer import DEFAULT_LINES_NAMES, NO_LINES

BATCH = 64  # files per call of an actor
CONNECT_TIMEOUT = 10  # seconds to wait for a cluster's address to answer


class ReadActor:
    """Reads batches of files with the model it loaded once; each result comes back as the JSON
    line a worker process would write, so that both give the same."""

    def __init__(self, settings: ReadSettings, folder: str):
        self.settings = settings
        self.folder = folder  # relative paths are relative to it, wherever the actor runs
        self.recognizer = worker_recognizer(settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        lines = []
        for file in map(str, batch["item"]):
            result, _ = read_file(self.recognizer, os.path.join(self.folder, file), self.settings)
            lines.append(json.dumps({**result, "file": file}))
        return {"result": lines}


def ray_results(
    files: list[str], settings: ReadSettings, address: bool | str, actors: int | None
) -> Iterator[Result]:
    """Each file's result, read on Ray: a local instance of ``actors`` CPUs (default: all of
    this machine's) if ``address`` is ``True``, else the cluster at ``address``; a Ray this
    process is already connected to is used as it is."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        _connect(ray, address, actors)
    try:
        yield from _read_on_ray(ray, files, settings, actors)
    finally:
        if started:
            ray.shutdown()


def import_ray() -> Any:
    """Ray, or a ``DigitrecError`` saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise DigitrecError(
            "--ray needs Ray, which is not installed: pip install 'digitrec[scale]'"
        ) from None
    return ray


def _connect(ray: Any, address: bool | str, actors: int | None) -> None:
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address is True:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            with _described_as_local_cluster():
                ray.init(
                    num_cpus=actors or os.cpu_count(),
                    include_dashboard=False,
                    **quiet,
                )
        else:
            _check_reachable(address)
            ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise DigitrecError(f"cannot start or join Ray at {address}: {exc}") from None


@contextmanager
def _described_as_local_cluster() -> Iterator[None]:
    """Start Ray's processes with a home folder whose cluster file says "local".

    Even with usage statistics off, Ray's head asks the cloud metadata services
    (169.254.169.254, metadata.google.internal) which cloud it runs on, unless
    ``~/ray_bootstrap_config.yaml`` names the provider, as Ray's cluster launcher writes it on
    a head node. A local instance is no cloud machine: say so, and nothing leaves the machine.
    """
    previous = os.environ.get("HOME")
    os.environ["HOME"] = str(_local_home())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = previous


@functools.cache
def _local_home() -> Path:
    """The home folder of this process's local Ray instances: one for all of them, as Ray
    keeps the authentication token of its first start there (``~/.ray/auth_token``) and a
    later start in the same process expects to find it."""
    home = Path(tempfile.mkdtemp(prefix="digitrec-ray-"))
    atexit.register(shutil.rmtree, home, True)  # read by Ray's head as it starts, so kept till exit
    (home / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
    return home


def _check_reachable(address: str) -> None:
    """Fail fast on a HOST:PORT that does not answer: Ray would keep trying for many minutes."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # "auto", or a scheme Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise DigitrecError(
            f"cannot reach Ray at {address} ({exc.strerror or exc}); is the cluster started?"
        ) from None


def _absolute(model: str | None) -> str | None:
    """A model's path made absolute; a name ("default", "none") or None as it is."""
    if model is None or model in (*DEFAULT_LINES_NAMES, NO_LINES):
        return model
    return str(Path(model).absolute())


def _read_on_ray(
    ray: Any, files: list[str], settings: ReadSettings, actors: int | None
) -> Iterator[Result]:
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours is drawn by the caller, on a terminal only
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its advice on tuning, mostly
    size = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
    # The actors may run elsewhere, in another folder.
    settings = replace(settings, model=_absolute(settings.model), lines=_absolute(settings.lines))
    dataset = ray.data.from_items(files).map_batches(
        ReadActor,
        fn_constructor_kwargs={"settings": settings, "folder": os.getcwd()},
        batch_size=BATCH,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=1,
    )
    try:
        for row in dataset.iter_rows():
            yield json.loads(row["result"]), []
    except ray.exceptions.RayError as exc:
        # The cause is on the last line, after the traceback from the cluster.
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DigitrecError(f"reading on Ray failed: {message}") from None
