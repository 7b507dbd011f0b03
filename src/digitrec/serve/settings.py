"""The service's settings as data: the app's (per worker process) and the server's.

Each setting is described once (``digitrec.settings``): ``digitrec serve``'s flags, their help
and their checks are made from these descriptions, and the settings are checked whenever they
are made. No heavy imports, so that ``digitrec serve --help`` can show the defaults without
loading the web stack.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from digitrec.errors import DigitrecError
from digitrec.read.image_folders import CLASS_NAMES, LINES_FOLDER
from digitrec.read.loader import SHIPPED_LINE_MODELS
from digitrec.read.recognizer import NO_LINES
from digitrec.settings import Unit, check_settings, setting

SETTINGS_ENV = "DIGITREC_SERVE_SETTINGS"
MEGABYTE = 1024 * 1024
MEGABYTES, KILOBYTES = Unit("MB", MEGABYTE), Unit("KB", 1024, whole=True)
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
LOG_LEVELS = ("debug", "info", "warning", "error")


def model_file(name: str) -> str:
    """A model named on the command line: 'default', 'documents' (a shipped line model) or 'none'
    as they are, a file as its absolute path (worker processes may start elsewhere)."""
    return name if name in (*SHIPPED_LINE_MODELS, NO_LINES) else str(Path(name).resolve())


def host_patterns(text: str) -> tuple[str, ...]:
    """Comma-separated host names, ``*.domain`` patterns, or ``*``."""
    patterns = tuple(part.strip().lower() for part in text.split(","))
    for pattern in patterns:
        bare = pattern.removeprefix("*.") if pattern != "*" else "example"
        if not bare or "*" in bare or "/" in bare or (":" in bare and not bare.startswith("[")):
            raise DigitrecError(
                f"{pattern!r} is not a host name, '*.domain' or '*' (give names without ports)"
            )
    return patterns


def collection_folder(text: str) -> str:
    """A folder to store corrections in, as an absolute path: one that does not exist yet (in a
    folder it may be created in), or holds only class folders and the folder of lines."""
    folder = Path(text).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise DigitrecError(f"{text} is a file, not a folder")
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not os.access(existing, os.R_OK | os.W_OK | os.X_OK):
        raise DigitrecError(f"cannot read and write in {existing}")
    others = [entry.name for entry in folder.iterdir()] if folder.is_dir() else []
    ours = (*CLASS_NAMES, LINES_FOLDER)
    others = [name for name in others if name not in ours and not name.startswith(".")]
    if others:
        raise DigitrecError(
            f"{text} holds {others[0]!r}, which is not a class folder: give a new or empty "
            f"folder, or one holding only the class folders {', '.join(CLASS_NAMES)} and "
            f"{LINES_FOLDER}/"
        )
    return str(folder)


@dataclass(frozen=True)
class ServeSettings:
    """The models to serve, the request limits, ONNX Runtime threads per worker process, and
    where and how much to collect users' corrections. Made only valid."""

    model: str = setting(
        "default",
        "a .onnx model file, or 'default' (the packaged one)",
        parse=model_file,
        default_text="",
    )
    lines: str = setting(
        "default",
        "the page reader's line model, for any --model: an exported line model (a .onnx file or "
        "the folder holding it), 'default' (the --model run directory's own, else the packaged "
        "one) or 'none' (no page reader: the single-digit classifier reads every image)",
        parse=model_file,
        metavar="MODEL|default|none",
    )
    max_body_bytes: int = setting(
        10 * MEGABYTE,
        "largest request body accepted",
        above=0,
        flag="--max-body-mb",
        unit=MEGABYTES,
    )
    max_pixels: int | None = setting(
        None,
        "largest image accepted, in pixels",
        at_least=1,
        metavar="N",
        default_text="the image decoder's limit",
    )
    threads: int | None = setting(
        1, "ONNX Runtime threads per worker", at_least=1, metavar="N"
    )  # None: ONNX Runtime's choice
    concurrent_reads: int = setting(
        4,
        "images decoded and read at once per worker; each can take much memory",
        at_least=1,
        metavar="N",
    )
    queued_reads: int = setting(
        16,
        "requests more that may wait per worker; beyond them the answer is 503 with Retry-After",
        at_least=0,
        metavar="N",
    )
    body_timeout: float = setting(
        60.0,
        "seconds a request's body may take to arrive, else 408",
        above=0,
        metavar="S",
    )
    uploads_per_client: int = setting(
        8,
        "request bodies one client address may be sending at once per worker; beyond them the "
        "answer is 429 with Retry-After",
        at_least=1,
        metavar="N",
    )
    allowed_hosts: tuple[str, ...] = setting(
        LOCAL_HOSTS,
        "comma-separated host names the service answers to (Host header; others get 400, "
        "against DNS rebinding): names, '*.domain' or '*' for any",
        parse=host_patterns,
        metavar="HOSTS",
        default_text=f"{', '.join(LOCAL_HOSTS)} and --host",
    )
    collect_dir: str | None = setting(
        None,
        "store users' corrections (POST /api/v1/corrections, and a control on the page) in DIR: "
        "each digit as a 28x28 image in class folders 0/ ... 9/ (digitrec train --images DIR), "
        f"and each line of a page or of a changed number as an image in {LINES_FOLDER}/ listed "
        f"with its text in {LINES_FOLDER}/labels.csv",
        flag="--collect",
        parse=collection_folder,
        metavar="DIR",
        default_text="corrections are not collected",
    )
    collect_max_files: int = setting(
        10_000,
        "the most files the collection of corrections may hold; beyond, 507",
        at_least=1,
        metavar="N",
    )
    collect_max_bytes: int = setting(
        64 * MEGABYTE,
        "the most disk space the collection of corrections may take; beyond, 507",
        above=0,
        flag="--collect-max-mb",
        unit=MEGABYTES,
    )  # in whole blocks

    def __post_init__(self) -> None:
        check_settings(self)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeSettings:
        """Settings handed to worker processes through ``$DIGITREC_SERVE_SETTINGS``."""
        raw = os.environ.get(SETTINGS_ENV)
        return cls(**json.loads(raw)) if raw else cls()


@dataclass(frozen=True)
class ServerOptions:
    """Where to listen, what one connection may hold (see ``digitrec.serve.server``), and how
    many worker processes serve. Made only valid."""

    host: str = setting("127.0.0.1", "address to listen on")
    port: int = setting(8000, "port to listen on", at_least=1, at_most=65535, metavar="PORT")
    log_level: str = setting(
        "info", "server log level; below 'info' there is no access log", choices=LOG_LEVELS
    )
    max_header_bytes: int = setting(
        16 * 1024,
        "largest request line and headers, else 400",
        at_least=1024,
        flag="--max-header-kb",
        unit=KILOBYTES,
    )
    timeout: float = setting(
        5.0,
        "seconds a connection may stay idle, or take to send a request's headers",
        above=0,
        metavar="S",
    )
    workers: int = setting(1, "worker processes", at_least=1, metavar="N")

    def __post_init__(self) -> None:
        check_settings(self)

    def uvicorn_options(self) -> dict[str, Any]:
        """Keyword arguments for ``uvicorn.run`` and ``uvicorn.Config`` (the workers apart)."""
        return {
            "host": self.host,
            "port": self.port,
            "log_level": self.log_level,
            "http": "digitrec.serve.server:HeaderTimeoutProtocol",
            "ws": "none",  # no WebSocket endpoints (see digitrec.serve.server)
            "h11_max_incomplete_event_size": self.max_header_bytes,
            "timeout_keep_alive": self.timeout,
            "timeout_graceful_shutdown": 10,
        }
