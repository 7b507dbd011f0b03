"""Reading many image files: in worker processes or on Ray, each result written as it arrives.

``read_files(paths, ...)`` lists the image files (folders searched recursively), leaves out those
an earlier run already wrote to ``output`` (``resume``) and returns a ``ReadJob``; iterating it
reads the rest, in this process, in ``jobs`` worker processes that each load the model once, or
on Ray, and yields each file's result once it is written (in no set order with workers). A file
that cannot be read gets its ``error`` and the others are still read, also when reading it
failed unexpectedly (``internal_error``). Every result names what read it (``model``: the
classifier and the page reader, ``Recognizer.describe``). Only the paths are held in memory, never
the results.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, closing
from itertools import chain, count
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from digitrec.batch.output import ENDED_WORKER, Previous, check_output, open_output
from digitrec.batch.worker import ReadSettings, Result, read_file, unread_result, worker_recognizer
from digitrec.errors import DigitrecError
from digitrec.read.imaging import MAX_PIXELS
from digitrec.read.options import DEFAULT_READER, ReadOptions
from digitrec.read.recognizer import DEFAULT_LINES, Recognizer

CHUNK = 16  # files per task handed to a worker process
IN_FLIGHT = 2  # tasks queued per worker process: each stays busy, few results wait in memory
MAX_DEATHS_IN_A_ROW = 3  # files read alone whose worker process ended, before the run stops
# What --files-from may list: a name as long as Linux allows a path (PATH_MAX), and a list whose
# names, held in memory, take a few hundred MB at most.
MAX_NAME_LENGTH = 4096
MAX_LISTED = 1_000_000
MAX_LIST_SIZE = 256 * 2**20  # characters


def read_files(
    paths: Iterable[str | Path],
    model: str | Path = "default",
    *,
    lines: str | Path | None = DEFAULT_LINES,
    single: bool = False,
    top_k: int = 3,
    max_pixels: int = MAX_PIXELS,
    threads: int | None = None,
    reader: str = DEFAULT_READER,
    jobs: int | None = None,
    output: str | Path | None = None,
    resume: bool = False,
    ray: bool | str = False,
    save_normalized: str | Path | None = None,
    options: ReadOptions | None = None,
) -> ReadJob:
    """Prepare to read the digits in image files and folders, as ``digitrec predict`` does.

    ``jobs`` worker processes (default 1: this process) or, with ``ray``, Ray actors (default:
    one per CPU); ``ray=True`` starts a local Ray instance (or uses the one this process is
    connected to), a string is the address of a cluster to join. ``output``: a JSON lines file
    (a Parquet file if it ends in ``.parquet``) written as results arrive; ``resume`` continues
    one, leaving out the files it lists but those whose worker process ended. ``lines``: the
    page reader's line model, as ``Recognizer.load`` takes it. ``options``: how each image is
    read, as one ``ReadOptions`` instead of ``single``, ``top_k``, ``max_pixels`` and ``reader``
    (not both). The options, the models and the output are checked now, so that a bad one is a
    ``DigitrecError`` before any image is read.
    """
    options = _options_given(read_options(single, top_k, max_pixels, reader), options)
    _check_options(jobs, output, resume, ray, save_normalized)
    if ray:
        from digitrec.batch.on_ray import import_ray

        import_ray()
    named = list(paths)
    files = list(image_files(named))
    if not files:
        raise DigitrecError(_nothing_found(named))
    recognizer = Recognizer.load(model, threads=threads, lines=lines)  # a bad one stops us here
    previous = check_output(Path(output), resume) if output else Previous()
    settings = ReadSettings(
        str(model), None if lines is None else str(lines), options, threads, bool(save_normalized)
    )
    pending = [file for file in files if not previous.lists(file)]
    return ReadJob(
        pending,
        settings,
        skipped=len(files) - len(pending),
        failed_before=previous.failed,
        jobs=jobs,
        output=Path(output) if output else None,
        ray=ray,
        save_normalized=Path(save_normalized) if save_normalized else None,
        recognizer=recognizer if not ray and (jobs or 1) == 1 else None,
        model=recognizer.describe(),
    )


def read_options(
    single: bool = False,
    top_k: int = 3,
    max_pixels: int = MAX_PIXELS,
    reader: str = DEFAULT_READER,
) -> ReadOptions:
    """The reading options of ``digitrec predict``'s flags (``read_files``'s keywords), a bad
    one an error that names its flag."""
    if top_k < 1:
        raise DigitrecError("--top-k must be at least 1")
    if max_pixels < 1:
        raise DigitrecError("--max-pixels must be positive")
    return ReadOptions(single, top_k, max_pixels, reader)


def _options_given(keywords: ReadOptions, options: ReadOptions | None) -> ReadOptions:
    """``options`` if given, else those of the keywords; both is an error, since one would
    silently win over the other."""
    if options is None:
        return keywords
    if keywords != ReadOptions():
        raise DigitrecError(
            "reading options given twice: pass options=ReadOptions(...) or single, top_k, "
            "max_pixels and reader one by one, not both"
        )
    return options


def _check_options(
    jobs: int | None,
    output: str | Path | None,
    resume: bool,
    ray: bool | str,
    save_normalized: str | Path | None,
) -> None:
    if jobs is not None and jobs < 1:
        raise DigitrecError("--jobs must be at least 1")
    if resume and not output:
        raise DigitrecError("--resume continues an --output file; name it")
    if ray and save_normalized:
        raise DigitrecError("--save-normalized is not available with --ray")


def _nothing_found(paths: list[str | Path]) -> str:
    if not paths:
        return "no image files or folders given"
    names = ", ".join(map(str, paths[:3])) + (", ..." if len(paths) > 3 else "")
    return f"no image files found in {names}"


def image_files(paths: Iterable[str | Path]) -> Iterator[str]:
    """Each named file as given (even if it will fail to read), and the image files found in
    each named folder, recursively and sorted; hidden files are passed over."""
    from PIL import Image

    suffixes = set(Image.registered_extensions())
    for path in map(Path, paths):
        if not path.is_dir():
            yield str(path)
            continue
        for found in sorted(path.rglob("*")):
            hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
            if found.is_file() and not hidden and found.suffix.lower() in suffixes:
                yield str(found)


def listed_paths(file: TextIO, source: str) -> Iterator[str]:
    """The paths listed in a text file, one per line (as ``--files-from`` reads it); blank lines
    skipped. What is read is bounded (``MAX_NAME_LENGTH``, ``MAX_LISTED``, ``MAX_LIST_SIZE``),
    so that an endless source (``/dev/zero``) is a ``DigitrecError``, not all of the memory."""
    names = size = 0
    for number in count(1):
        line = file.readline(MAX_NAME_LENGTH + 1)
        if not line:
            return
        name, size = line.rstrip("\r\n"), size + len(line)
        if len(name) > MAX_NAME_LENGTH:
            raise DigitrecError(
                f"--files-from {source}: line {number} is longer than {MAX_NAME_LENGTH} "
                "characters; give a list of file names, one per line"
            )
        if not name.strip():
            continue
        names += 1
        if names > MAX_LISTED or size > MAX_LIST_SIZE:
            raise DigitrecError(
                f"--files-from {source}: more than {MAX_LISTED:,} names or "
                f"{MAX_LIST_SIZE // 2**20} MiB; split the list and read each part in turn (the "
                "same --output with --resume collects all their results)"
            )
        yield name


class ReadJob:
    """The files still to read (``files``); iterating reads them and yields each result."""

    def __init__(
        self,
        files: list[str],
        settings: ReadSettings,
        *,
        skipped: int,
        failed_before: int,
        jobs: int | None,
        output: Path | None,
        ray: bool | str,
        save_normalized: Path | None,
        recognizer: Recognizer | None,
        model: dict[str, str | None],
    ):
        self.files = files
        self.settings = settings
        self.skipped = skipped  # listed in the output already
        self.failed_before = failed_before  # of those, the ones that could not be read
        self.jobs = jobs
        self.output = output
        self.ray = ray
        self.save_normalized = save_normalized
        self.recognizer = recognizer
        self.model = model  # what reads, as every result names it (``Recognizer.describe``)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with ExitStack() as stack:
            output = stack.enter_context(open_output(self.output)) if self.output else None
            saver = NormalizedSaver(self.save_normalized) if self.save_normalized else None
            for read, normalized in stack.enter_context(closing(self._results())):
                result = {**read, "model": self.model}
                if output:
                    output.write(result)
                if saver and result["error"] is None:
                    saver.save(Path(result["file"]), normalized)
                yield result

    def _results(self) -> Iterator[Result]:
        if self.ray:
            from digitrec.batch.on_ray import ray_results

            return ray_results(self.files, self.settings, self.ray, self.jobs)
        if self.recognizer:
            return (read_file(self.recognizer, file, self.settings) for file in self.files)
        return _pool_results(self.files, self.settings, self.jobs or 1)


_worker: tuple[Recognizer, ReadSettings] | None = None  # set in each worker process


def _start_worker(settings: ReadSettings) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    _worker = worker_recognizer(settings), settings


def _exit_with_parent() -> None:
    """End this worker process once its parent has ended, even killed (it would wait forever)."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)


def _read_chunk(files: list[str]) -> list[Result]:
    assert _worker is not None, "the pool's initializer loads the model"
    recognizer, settings = _worker
    return [read_file(recognizer, file, settings) for file in files]


def _chunks(files: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(files), CHUNK):
        yield files[start : start + CHUNK]


def _pool_results(files: list[str], settings: ReadSettings, jobs: int) -> Iterator[Result]:
    """Results from ``jobs`` worker processes, each loading the model once; chunks of files are
    handed out as workers finish, so that few results are ever waiting in memory.

    A worker that ends unexpectedly (a crash in a decoder, killed, out of memory) takes its pool
    down with it: the files then in flight are read again in a new pool, one at a time, and the
    one whose worker ends again gets that as its error; the other files are still read.
    """
    chunks = deque(_chunks(files))
    suspects: deque[list[str]] = deque()  # the files in flight when a worker died, one per task
    deaths_in_a_row = 0
    while chunks or suspects:
        pool = _new_pool(settings, jobs)
        try:
            # The suspects one at a time, so that a death names its file; then the rest.
            reads = chain(
                _read_chunks(pool, suspects, 1), _read_chunks(pool, chunks, jobs * IN_FLIGHT)
            )
            for result in reads:
                deaths_in_a_row = 0
                yield result
        except _WorkerDied as died:
            if not died.alone:
                suspects.extend([file] for chunk in died.in_flight for file in chunk)
                continue
            (file,) = died.in_flight[0]
            yield unread_result(file, ENDED_WORKER), []
            deaths_in_a_row += 1
            if deaths_in_a_row == MAX_DEATHS_IN_A_ROW:
                raise DigitrecError(
                    f"worker processes ended unexpectedly on {deaths_in_a_row} files in a row "
                    "(the model cannot be loaded, or memory is short?); the results written so "
                    "far are kept, and --resume continues, reading those files again"
                ) from None
        finally:
            pool.shutdown(cancel_futures=True)


class _WorkerDied(Exception):
    """A worker process ended and broke its pool; ``in_flight``: the chunks then being read,
    ``alone``: whether that was a single file read on its own."""

    def __init__(self, in_flight: list[list[str]], alone: bool):
        super().__init__(f"{len(in_flight)} chunks in flight")
        self.in_flight = in_flight
        self.alone = alone


def _new_pool(settings: ReadSettings, jobs: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        jobs,
        mp_context=multiprocessing.get_context("spawn"),  # no copy of this process's threads
        initializer=_start_worker,
        initargs=(settings,),
    )


def _read_chunks(
    pool: ProcessPoolExecutor, chunks: deque[list[str]], width: int
) -> Iterator[Result]:
    """Read the chunks, taken from the left, with at most ``width`` tasks in flight; raise
    ``_WorkerDied`` with the chunks in flight (their results not given) if the pool breaks."""
    running: dict[Future, list[str]] = {}
    while chunks or running:
        while chunks and len(running) < width:
            chunk = chunks.popleft()
            running[pool.submit(_read_chunk, chunk)] = chunk
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        try:
            finished = [future.result() for future in done]
        except BrokenProcessPool:
            raise _WorkerDied(list(running.values()), alone=width == 1) from None
        for future, results in zip(done, finished, strict=True):
            del running[future]
            yield from results


class NormalizedSaver:
    """Writes each image's 28x28 model inputs as ``DIR/<name>-<k>.png`` (names kept unique)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.used: set[str] = set()

    def save(self, source: Path, images: list[np.ndarray]) -> None:
        from PIL import Image

        from digitrec.files import atomic_path

        name, count = source.stem, 1
        while name in self.used:
            count += 1
            name = f"{source.stem}~{count}"
        self.used.add(name)
        for k, image in enumerate(images):
            pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
            with atomic_path(self.directory / f"{name}-{k}.png", suffix=".png") as tmp:
                Image.fromarray(pixels).save(tmp)
