"""The service's settings as data: the app's (per worker process) and the server's.

Plain dataclasses with no heavy imports, so that ``digitrec serve --help`` can show their
defaults without loading the web stack.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

SETTINGS_ENV = "DIGITREC_SERVE_SETTINGS"
NO_LINES = "none"  # the line model setting that means no page reader
MEGABYTE = 1024 * 1024
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True)
class ServeSettings:
    """The models to serve, the request limits, ONNX Runtime threads per worker process, and
    where and how much to collect users' corrections."""

    model: str = "default"
    lines: str = "default"  # the page reader's line model: a file or run, "default" or "none"
    max_body_bytes: int = 10 * MEGABYTE
    max_pixels: int | None = None  # largest image decoded; None: digitrec.read.imaging's limit
    threads: int | None = 1
    concurrent_reads: int = 4  # images decoded and read at once per worker: bounds memory
    queued_reads: int = 16  # requests more (their bodies in) that may wait for a read; else 503
    body_timeout: float = 60.0  # seconds for a request's body to arrive, else 408
    uploads_per_client: int = 8  # bodies one client address may be sending at once; else 429
    allowed_hosts: tuple[str, ...] = LOCAL_HOSTS  # Host header values answered ('*': any)
    collect_dir: str | None = None  # where users' corrections are stored; None: not collected
    collect_max_files: int = 10_000  # the most files the collection may hold, else 507
    collect_max_bytes: int = 64 * MEGABYTE  # ... and the most disk space (in whole blocks)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServeSettings:
        """Settings handed to worker processes through ``$DIGITREC_SERVE_SETTINGS``."""
        raw = os.environ.get(SETTINGS_ENV)
        if not raw:
            return cls()
        settings = json.loads(raw)
        return cls(**{**settings, "allowed_hosts": tuple(settings["allowed_hosts"])})


@dataclass(frozen=True)
class ServerOptions:
    """Where to listen, and what one connection may hold (see ``digitrec.serve.server``)."""

    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    max_header_bytes: int = 16 * 1024  # request line and headers (to within 1 KB); else 400
    timeout: float = 5.0  # seconds a connection may stay idle or take to send a request's headers

    def uvicorn_options(self) -> dict[str, Any]:
        """Keyword arguments for ``uvicorn.run`` and ``uvicorn.Config``."""
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
