"""Where ``digitrec predict --output`` puts its results: JSON lines, resumable, or Parquet.

JSON lines are appended one whole line per image, each in one write, as the results arrive, so
a run killed at any moment leaves every line it wrote but perhaps the last, which was cut short;
resuming drops that torn line and skips the images already listed. A Parquet file is written to a
temporary name and renamed into place when complete (it cannot be appended to, so not resumed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from digitrec.errors import DigitrecError
from digitrec.files import atomic_path

PARQUET_SUFFIX = ".parquet"
ROW_GROUP = 10_000  # Parquet rows buffered before they are written as one row group


class Output(Protocol):
    def write(self, result: dict[str, Any]) -> None: ...


@dataclass
class Previous:
    """What an earlier run left in a JSON lines output: the files it read and how many failed."""

    files: set[str] = field(default_factory=set)
    failed: int = 0


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() == PARQUET_SUFFIX


def check_output(path: Path, resume: bool) -> Previous:
    """What is already in ``path``, once it is known safe to write: without ``resume`` it must
    not hold results yet, which are never overwritten; with it, a torn last line is dropped."""
    if path.is_dir():
        raise DigitrecError(f"--output {path} is a folder; name a file")
    written = path.exists() and path.stat().st_size > 0
    if is_parquet(path):
        if resume:
            raise DigitrecError(
                "--resume needs JSON lines output: a Parquet file cannot be extended"
            )
        if written:
            raise DigitrecError(f"{path} already exists; choose another --output")
        _pyarrow()
        return Previous()
    if not written:
        return Previous()
    if not resume:
        raise DigitrecError(
            f"{path} already exists; add --resume to continue it, or choose another --output"
        )
    try:
        return _previous_results(path)
    except OSError as exc:
        raise DigitrecError(f"--output {path}: {exc.strerror or exc}") from None


def _previous_results(path: Path) -> Previous:
    """Scan a JSON lines output; truncate a last line that a killed run left unfinished (under
    the lock: a line being written by another run is not torn)."""
    previous, offset = Previous(), 0
    with path.open("rb+") as file:
        _lock(file, path)
        for number, line in enumerate(file, start=1):
            if not line.endswith(b"\n"):  # torn: its image was not recorded, so it is read again
                file.truncate(offset)
                break
            offset += len(line)
            result = _parsed(line, path, number)
            previous.files.add(result["file"])
            previous.failed += result.get("error") is not None
    return previous


def _parsed(line: bytes, path: Path, number: int) -> dict[str, Any]:
    try:
        result = json.loads(line)
    except ValueError:
        result = None
    if not isinstance(result, dict) or not isinstance(result.get("file"), str):
        raise DigitrecError(
            f"{path}, line {number}: not a result of digitrec predict; not resuming over it"
        )
    return result


@contextmanager
def open_output(path: Path) -> Iterator[Output]:
    """The writer for ``path``, chosen by its suffix, checked with ``check_output`` first."""
    if is_parquet(path):
        with _parquet_output(path) as output:
            yield output
    else:
        with _appending(path) as file:
            _lock(file, path)
            yield JsonLines(file)


def _appending(path: Path) -> BinaryIO:
    """``path`` opened to append, unbuffered (its folder made if need be)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("ab", buffering=0)
    except OSError as exc:
        raise DigitrecError(f"--output {path}: {exc.strerror or exc}") from None


class JsonLines:
    """Appends each result as one line, in one unbuffered write, so none is half in memory."""

    def __init__(self, file: BinaryIO):
        self.file = file

    def write(self, result: dict[str, Any]) -> None:
        data = memoryview((json.dumps(result) + "\n").encode())
        while data:
            data = data[self.file.write(data) :]


def _lock(file: BinaryIO, path: Path) -> None:
    """Refuse a second writer: two runs continuing one output would read images twice."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one writer is the user's care
        return
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise DigitrecError(f"{path} is being written by another digitrec predict") from None


@contextmanager
def _parquet_output(path: Path) -> Iterator[Output]:
    pa = _pyarrow()
    import pyarrow.parquet as pq

    schema = _parquet_schema(pa)
    with atomic_path(path, suffix=PARQUET_SUFFIX) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        output = ParquetRows(writer, schema)
        yield output
        output.flush()


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise DigitrecError(
            "Parquet output needs pyarrow, which is not installed: pip install 'digitrec[scale]'"
        ) from None
    return pyarrow


class ParquetRows:
    """Buffers rows and writes them as row groups; ``top`` pairs become (label, probability)."""

    def __init__(self, writer: Any, schema: Any):
        self.writer, self.schema, self.rows = writer, schema, []

    def write(self, result: dict[str, Any]) -> None:
        digits = [
            {**digit, "top": [{"label": k, "probability": p} for k, p in digit["top"]]}
            for digit in result["digits"]
        ]
        self.rows.append({**result, "digits": digits})
        if len(self.rows) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []


def _parquet_schema(pa: Any) -> Any:
    top = pa.struct([("label", pa.int64()), ("probability", pa.float64())])
    digit = pa.struct(
        [
            ("label", pa.int64()),
            ("confidence", pa.float64()),
            ("box", pa.list_(pa.int64())),
            ("top", pa.list_(top)),
        ]
    )
    return pa.schema(
        [
            ("file", pa.string()),
            ("text", pa.string()),
            ("digits", pa.list_(digit)),
            ("error", pa.string()),
        ]
    )
