"""``digitrec serve``: the HTTP API and the drawing page on uvicorn."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="run the web service and the drawing page")
    parser.add_argument(
        "--model", default="default", help="a .onnx model file, or 'default' (the packaged model)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--threads", type=int, default=1, help="ONNX Runtime threads per worker process"
    )
    parser.add_argument(
        "--max-body-mb", type=float, default=10.0, help="largest request body accepted, in MB"
    )
    parser.add_argument("--max-pixels", type=int, help="largest image accepted, in pixels")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="server log level; below 'info' there is no access log",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    import uvicorn

    from digitrec.errors import DigitrecError
    from digitrec.serve.app import (
        MEGABYTE,
        SETTINGS_ENV,
        ServeSettings,
        create_app,
        load_recognizer,
    )

    if args.workers < 1 or args.threads < 1 or args.max_body_mb <= 0:
        raise DigitrecError("--workers, --threads and --max-body-mb must be positive")
    model = args.model if args.model == "default" else str(Path(args.model).resolve())
    settings = ServeSettings(
        model=model,
        max_body_bytes=int(args.max_body_mb * MEGABYTE),
        threads=args.threads,
        **({"max_pixels": args.max_pixels} if args.max_pixels else {}),
    )
    # Loading here reports a bad --model as a plain error before any worker starts.
    recognizer = load_recognizer(settings)
    print(f"digitrec serve: http://{args.host}:{args.port}/  (API docs at /docs)", flush=True)
    options = dict(
        host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=10
    )
    if args.workers == 1:
        app = create_app(recognizer, settings)
        uvicorn.run(app, **options)
    else:
        os.environ[SETTINGS_ENV] = settings.to_env()
        uvicorn.run(
            "digitrec.serve.app:app_from_env", factory=True, workers=args.workers, **options
        )
    return 0
