"""``digitrec serve``: the HTTP API and the drawing page on uvicorn.

Every option is checked as it is parsed, so that a bad value is a one-line error before the
model is loaded or a port is bound.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
from collections.abc import Callable
from pathlib import Path

from digitrec.read.image_folders import CLASS_NAMES, LINES_FOLDER
from digitrec.serve.settings import (
    LOCAL_HOSTS,
    MEGABYTE,
    NO_LINES,
    ServerOptions,
    ServeSettings,
)


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high`` (no upper bound if None)."""
    bounds = f"from {low} to {high}" if high is not None else f"at least {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {bounds}, not {value}")
        return value

    return parse


def positive_number(text: str) -> float:
    """An argparse type: a finite number above zero (no nan, no inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text}")
    return value


def host_name(host: str) -> str:
    """``host`` as it appears in a Host header and a URL: IPv6 addresses in brackets."""
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def host_patterns(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated host names, ``*.domain`` patterns, or ``*``."""
    patterns = tuple(part.strip().lower() for part in text.split(","))
    for pattern in patterns:
        bare = pattern.removeprefix("*.") if pattern != "*" else "example"
        if not bare or "*" in bare or "/" in bare or (":" in bare and not bare.startswith("[")):
            raise argparse.ArgumentTypeError(
                f"{pattern!r} is not a host name, '*.domain' or '*' (give names without ports)"
            )
    return patterns


def collection_folder(text: str) -> Path:
    """An argparse type: a folder to store corrections in: one that does not exist yet (in a
    folder it may be created in), or holds only class folders and the folder of lines."""
    folder = Path(text).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not os.access(existing, os.R_OK | os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot read and write in {existing}")
    others = [entry.name for entry in folder.iterdir()] if folder.is_dir() else []
    ours = (*CLASS_NAMES, LINES_FOLDER)
    others = [name for name in others if name not in ours and not name.startswith(".")]
    if others:
        raise argparse.ArgumentTypeError(
            f"{text} holds {others[0]!r}, which is not a class folder: give a new or empty "
            f"folder, or one holding only the class folders {', '.join(CLASS_NAMES)} and "
            f"{LINES_FOLDER}/"
        )
    return folder


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    settings, server = ServeSettings(), ServerOptions()
    parser = subparsers.add_parser("serve", help="run the web service and the drawing page")
    add = parser.add_argument
    add("--model", default="default", help="a .onnx model file, or 'default' (the packaged one)")
    add(
        "--lines",
        default=settings.lines,
        metavar="MODEL|default|none",
        help="the page reader's line model, for any --model: an exported line model (a .onnx "
        "file or the folder holding it), 'default' (the --model run directory's own, else the "
        "packaged one) or 'none' (no page reader: the single-digit classifier reads every "
        "image) (default: %(default)s)",
    )
    add("--host", default=server.host, help="address to listen on (default: %(default)s)")
    numbers = [  # flag, type, default, metavar, help
        ("--port", whole_number(1, 65535), server.port, "PORT", "port to listen on"),
        ("--workers", whole_number(1), 1, "N", "worker processes"),
        ("--threads", whole_number(1), settings.threads, "N", "ONNX Runtime threads per worker"),
        (
            "--max-body-mb",
            positive_number,
            settings.max_body_bytes / MEGABYTE,
            "MB",
            "largest request body accepted",
        ),
        (
            "--concurrent-reads",
            whole_number(1),
            settings.concurrent_reads,
            "N",
            "images decoded and read at once per worker; each can take much memory",
        ),
        (
            "--queued-reads",
            whole_number(0),
            settings.queued_reads,
            "N",
            "requests more that may wait per worker; beyond them the answer is 503 with "
            "Retry-After",
        ),
        (
            "--body-timeout",
            positive_number,
            settings.body_timeout,
            "S",
            "seconds a request's body may take to arrive, else 408",
        ),
        (
            "--uploads-per-client",
            whole_number(1),
            settings.uploads_per_client,
            "N",
            "request bodies one client address may be sending at once per worker; beyond "
            "them the answer is 429 with Retry-After",
        ),
        (
            "--max-header-kb",
            whole_number(1),
            server.max_header_bytes // 1024,
            "KB",
            "largest request line and headers, else 400",
        ),
        (
            "--timeout",
            positive_number,
            server.timeout,
            "S",
            "seconds a connection may stay idle, or take to send a request's headers",
        ),
        (
            "--collect-max-files",
            whole_number(1),
            settings.collect_max_files,
            "N",
            "the most files the collection of corrections may hold; beyond, 507",
        ),
        (
            "--collect-max-mb",
            positive_number,
            settings.collect_max_bytes / MEGABYTE,
            "MB",
            "the most disk space the collection of corrections may take; beyond, 507",
        ),
    ]
    for flag, kind, default, metavar, text in numbers:
        add(
            flag, type=kind, default=default, metavar=metavar, help=f"{text} (default: {default:g})"
        )
    add(
        "--max-pixels",
        type=whole_number(1),
        metavar="N",
        help="largest image accepted, in pixels (default: the image decoder's limit)",
    )
    add(
        "--allowed-hosts",
        type=host_patterns,
        metavar="HOSTS",
        help="comma-separated host names the service answers to (Host header; others get 400, "
        f"against DNS rebinding): names, '*.domain' or '*' for any (default: "
        f"{', '.join(LOCAL_HOSTS)} and --host)",
    )
    add(
        "--collect",
        type=collection_folder,
        metavar="DIR",
        help="store users' corrections (POST /api/v1/corrections, and a control on the page) "
        "in DIR: each digit as a 28x28 image in class folders 0/ ... 9/ (digitrec train "
        f"--images DIR), and each line of a page or of a changed number as an image in "
        f"{LINES_FOLDER}/ listed with its text in {LINES_FOLDER}/labels.csv (default: "
        "corrections are not collected)",
    )
    add(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=server.log_level,
        help="server log level; below 'info' there is no access log (default: %(default)s)",
    )
    parser.set_defaults(run=run)


def model_file(name: str) -> str:
    """A model named on the command line: 'default' or 'none' as they are, a file as its absolute
    path (worker processes may start elsewhere)."""
    return name if name in ("default", NO_LINES) else str(Path(name).resolve())


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from digitrec.serve.app import create_app, load_recognizer
    from digitrec.serve.settings import SETTINGS_ENV

    settings = ServeSettings(
        model=model_file(args.model),
        lines=model_file(args.lines),
        max_body_bytes=max(1, round(args.max_body_mb * MEGABYTE)),
        max_pixels=args.max_pixels,
        threads=args.threads,
        concurrent_reads=args.concurrent_reads,
        queued_reads=args.queued_reads,
        body_timeout=args.body_timeout,
        uploads_per_client=args.uploads_per_client,
        allowed_hosts=args.allowed_hosts or (*LOCAL_HOSTS, host_name(args.host)),
        collect_dir=str(args.collect) if args.collect else None,
        collect_max_files=args.collect_max_files,
        collect_max_bytes=max(1, round(args.collect_max_mb * MEGABYTE)),
    )
    server = ServerOptions(
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        max_header_bytes=args.max_header_kb * 1024,
        timeout=args.timeout,
    )
    # Loading here reports a bad --model or --lines as a plain error before any worker starts.
    recognizer = load_recognizer(settings)
    url = f"http://{host_name(args.host)}:{args.port}/"
    print(f"digitrec serve: {url}  (API docs at /docs)", flush=True)
    if args.collect:
        args.collect.mkdir(parents=True, exist_ok=True)
        print(f"digitrec serve: collecting corrections in {args.collect}", flush=True)
    if args.workers == 1:
        uvicorn.run(create_app(recognizer, settings), **server.uvicorn_options())
    else:
        os.environ[SETTINGS_ENV] = settings.to_env()
        uvicorn.run(
            "digitrec.serve.app:app_from_env",
            factory=True,
            workers=args.workers,
            **server.uvicorn_options(),
        )
    return 0
