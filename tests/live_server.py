"""A real uvicorn server for the tests that talk HTTP over loopback (``from live_server import ...``,
pytest puts ``tests/`` on the path), and raw sockets to send it what no HTTP client would."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from digitrec.serve.settings import ServerOptions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None):
    """Poll ``/readyz`` until it answers 200; fail early if ``process`` (the server) exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not become ready in {timeout} s")


@contextmanager
def serving(app: FastAPI, **options: Any) -> Iterator[str]:
    """Run ``app`` on uvicorn in a thread on a free loopback port, as ``digitrec serve`` does
    (``options``: other ``ServerOptions``); yield its base URL, then shut it down and check
    that it stopped."""
    port = free_port()
    server_options = ServerOptions(host="127.0.0.1", port=port, log_level="warning", **options)
    config = uvicorn.Config(app, **server_options.uvicorn_options())
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive(), "the server did not shut down"


def connect(url: str, timeout: float = 5.0) -> socket.socket:
    """A raw TCP connection to the server at ``url``."""
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def exchange(url: str, data: bytes, wait: float = 5.0) -> tuple[bytes, float]:
    """Send ``data`` (as much as the server takes) on a fresh connection and read until the
    server closes it; the bytes received and the seconds it took."""
    start = time.monotonic()
    with connect(url, wait) as sock:
        try:
            for offset in range(0, len(data), 65536):
                sock.sendall(data[offset : offset + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped listening: its answer is what counts
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
    return reply, time.monotonic() - start


def statuses(reply: bytes) -> list[int]:
    """The status of each response in ``reply`` (a body may run straight into the next)."""
    return [int(status) for status in re.findall(rb"HTTP/1\.[01] (\d{3}) ", reply)]
