"""``digitrec serve``: the HTTP API and the drawing page on uvicorn.

The flags are made from the service's settings (``ServeSettings``, ``ServerOptions``), each
checked as it is parsed, so that a bad value is a one-line error before the model is loaded or a
port is bound.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path

from digitrec.cli.options import add_settings_flags, settings_given
from digitrec.serve.settings import LOCAL_HOSTS, ServerOptions, ServeSettings
from digitrec.settings import described


def host_name(host: str) -> str:
    """``host`` as it appears in a Host header and a URL: IPv6 addresses in brackets."""
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="run the web service and the drawing page")
    add_settings_flags(
        parser.add_argument_group("the service (each worker process)"), ServeSettings
    )
    add_settings_flags(parser.add_argument_group("the server"), ServerOptions)
    parser.set_defaults(run=run)


def settings_from(args: argparse.Namespace) -> tuple[ServeSettings, ServerOptions]:
    """The service's and the server's settings: the flags given, the defaults for the rest (the
    hosts answered to: the local ones and ``--host``)."""
    server = ServerOptions(**settings_given(args, tuple(described(ServerOptions))))
    given = settings_given(args, tuple(described(ServeSettings)))
    hosts = given.pop("allowed_hosts", None) or (*LOCAL_HOSTS, host_name(server.host))
    return ServeSettings(**given, allowed_hosts=hosts), server


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from digitrec.serve.app import create_app, load_recognizer
    from digitrec.serve.settings import SETTINGS_ENV

    settings, server = settings_from(args)
    # Loading here reports a bad --model or --lines as a plain error before any worker starts.
    recognizer = load_recognizer(settings)
    url = f"http://{host_name(server.host)}:{server.port}/"
    print(f"digitrec serve: {url}  (API docs at /docs)", flush=True)
    if settings.collect_dir:
        Path(settings.collect_dir).mkdir(parents=True, exist_ok=True)
        print(f"digitrec serve: collecting corrections in {settings.collect_dir}", flush=True)
    if server.workers == 1:
        uvicorn.run(create_app(recognizer, settings), **server.uvicorn_options())
    else:
        os.environ[SETTINGS_ENV] = settings.to_env()
        uvicorn.run(
            "digitrec.serve.app:app_from_env",
            factory=True,
            workers=server.workers,
            **server.uvicorn_options(),
        )
    return 0
