"""Where ``digitrec predict --output`` puts its results: JSON lines, resumable, or Parquet.

JSON lines are appended one whole line per image, each in one write, as the results arrive, so
a run killed at any moment leaves every line it wrote but perhaps the last, which was cut short;
resuming drops that torn line and skips the images already listed. A Parquet file is written to a
temporary name and renamed into place when complete (it cannot be appended to, so not resumed);
the temporaries of runs killed meanwhile are cleared.

A file name that is not valid UTF-8 is written with each undecodable byte as ``\\xNN``, the way
Python shows it (``written_text``), in both formats: a Parquet string must be UTF-8, and most
JSON readers refuse or replace the lone surrogates (``\\udcNN``) that such a name would give.
Floats are written to ``SIGNIFICANT`` significant digits: a confidence means no more.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, BinaryIO, Protocol, Union, get_args, get_origin, get_type_hints

from digitrec.errors import DigitrecError
from digitrec.files import atomic_path, remove_stale_temporaries
from digitrec.read.results import Reading, rounded

# The error of a file whose worker process ended while reading it: maybe the machine's fault, not
# the file's, so ``--resume`` reads it again (its new line, after this one, is its result).
ENDED_WORKER = "the worker process reading it ended unexpectedly (a crash, killed, out of memory?)"

# The keys of every result line, and how each line starts: ``file`` comes first (``batch``).
RESULT_KEYS = {"file", "text", "digits", "error"}
LINE_START = b'{"file": "'

PARQUET_SUFFIX = ".parquet"
ROW_GROUP = 10_000  # Parquet rows buffered before they are written as one row group


class Output(Protocol):
    def write(self, result: dict[str, Any]) -> None: ...


@dataclass
class Previous:
    """What an earlier run left in a JSON lines output: the files it read (as written there)
    and how many failed."""

    files: set[str] = field(default_factory=set)
    failed: int = 0

    def lists(self, file: str) -> bool:
        """Whether the output has a result for ``file``."""
        return written_text(file) in self.files


def written_text(text: str) -> str:
    """``text`` as an output holds it: the undecodable bytes of a file name that is not valid
    UTF-8 (surrogates, from ``os.fsdecode``) as ``\\xNN``; valid text as it is. Two names can
    look alike only if one holds a backslash followed by ``x`` and two hex digits."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no byte decodes to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def for_output(result: dict[str, Any]) -> dict[str, Any]:
    """A result as it is written: its file name and error (which may quote the name) as
    ``written_text``, its floats ``rounded``."""
    error = result["error"]
    return {
        **rounded(result),
        "file": written_text(result["file"]),
        "error": None if error is None else written_text(error),
    }


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
    """Scan a JSON lines output, which must be ours throughout (anything else is refused and
    left as it is); truncate a last line that a killed run left unfinished (under the lock: a
    line being written by another run is not torn). A file whose worker process ended
    (``ENDED_WORKER``) and has no later line is not done: it is read again."""
    previous, offset = Previous(), 0
    with path.open("rb+") as file:
        _lock(file, path)
        for number, line in enumerate(file, start=1):
            if not line.endswith(b"\n"):  # torn: its image was not recorded, so it is read again
                _check_torn(line, path, number)
                file.truncate(offset)
                break
            offset += len(line)
            result = _parsed(line, path, number)
            if result.get("error") == ENDED_WORKER:
                continue
            previous.files.add(written_text(result["file"]))
            previous.failed += result.get("error") is not None
    return previous


def _parsed(line: bytes, path: Path, number: int) -> dict[str, Any]:
    """A result line of ours: a JSON object with at least the keys every result has."""
    try:
        result = json.loads(line)
    except ValueError:
        result = None
    if not (
        isinstance(result, dict)
        and result.keys() >= RESULT_KEYS
        and isinstance(result["file"], str)
    ):
        raise _not_ours(path, number)
    return result


def _check_torn(line: bytes, path: Path, number: int) -> None:
    """A last line without its newline is ours only if it starts as each of our lines does
    (``LINE_START``), or is the start of that: what a run killed while writing it leaves."""
    if not (line.startswith(LINE_START) or LINE_START.startswith(line)):
        raise _not_ours(path, number)


def _not_ours(path: Path, number: int) -> DigitrecError:
    return DigitrecError(
        f"{path}, line {number}: not a result of digitrec predict; not resuming over it (the "
        "file is left as it is: choose another --output)"
    )


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
        data = memoryview((json.dumps(for_output(result)) + "\n").encode())
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
    remove_stale_temporaries(path)
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
    """Buffers rows and writes them as row groups; each ``top`` pair becomes a
    (label, probability) struct."""

    def __init__(self, writer: Any, schema: Any):
        self.writer, self.schema, self.rows = writer, schema, []

    def write(self, result: dict[str, Any]) -> None:
        self.rows.append(_with_top_structs(for_output(result)))
        if len(self.rows) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []


def _with_top_structs(value: Any) -> Any:
    """A result with each digit's ``top`` pairs as {label, probability} records."""
    if isinstance(value, dict):
        return {
            key: [{"label": k, "probability": p} for k, p in item]
            if key == "top"
            else _with_top_structs(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_with_top_structs(item) for item in value]
    return value


def _parquet_schema(pa: Any) -> Any:
    """The Parquet schema of a result line: ``file``, the fields of ``Reading`` as ``to_dict``
    gives them, typed from the dataclasses themselves, ``error`` and ``model`` (what read)."""
    reading = _arrow_struct(pa, Reading)
    return pa.schema(
        [
            ("file", pa.string()),
            *(reading.field(i) for i in range(reading.num_fields)),
            ("error", pa.string()),
            ("model", pa.struct([("classifier", pa.string()), ("page_reader", pa.string())])),
        ]
    )


def _arrow_struct(pa: Any, record: type) -> Any:
    hints = get_type_hints(record)
    return pa.struct(
        [
            (item.name, _arrow_type(pa, hints[item.name], item.name))
            for item in fields(record)
            if not item.metadata.get("array")
        ]
    )


def _arrow_type(pa: Any, annotation: Any, name: str) -> Any:
    """The Arrow type of a result field's annotation (``top`` pairs as labelled structs)."""
    if name == "top":
        return pa.list_(pa.struct([("label", pa.int64()), ("probability", pa.float64())]))
    if is_dataclass(annotation):
        return _arrow_struct(pa, annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (list, tuple):
        return pa.list_(_arrow_type(pa, args[0], ""))
    if origin in (Union, UnionType):  # "int | None": nullable, as every Arrow field is
        return _arrow_type(pa, next(arg for arg in args if arg is not type(None)), name)
    return {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}[annotation]
