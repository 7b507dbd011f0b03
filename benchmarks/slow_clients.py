"""Slow clients against `digitrec serve`: another client's single-digit latency while one holds
connections that send their request bodies a byte at a time.

Starts `digitrec serve` (1 worker, default model, ONNX threads=1, no access log) and sends
POST /api/v1/recognize with a single-digit PNG (the request of serve_load.py), one after another
for `--seconds`: first alone (the reference), then while `--slow` connections each send a
request's head and then a byte of its body every `--interval` seconds (a connection the server
closes is opened again). /readyz is asked once a second in both. All connections come from
127.0.0.1, so the server takes `--uploads-per-client` above `--slow` (0: the option is not
passed): what is measured is whether bodies still arriving keep the worker from reading
others' images; the bound per address is tested in tests/test_serve_limits.py.

    python benchmarks/slow_clients.py [--slow 20] [--interval 5] [--seconds 20] [--write-docs]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, markdown_table, write_into_readme
from serve_load import free_port, number_png, start_server

RECOGNIZE = "/api/v1/recognize"
SLOW_LENGTH = 10_000  # the Content-Length the slow connections declare (and never reach)


class SlowSender:
    """``count`` connections that each send a request's head, then a byte of its body every
    ``interval`` seconds, in a thread; a connection the server closes is opened again."""

    def __init__(self, port: int, count: int, interval: float) -> None:
        self.port, self.interval = port, interval
        self.head = (
            f"POST {RECOGNIZE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            f"Content-Length: {SLOW_LENGTH}\r\n\r\n"
        ).encode()
        self.connections = [self.open() for _ in range(count)]
        self.reopened = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.trickle, daemon=True)

    def open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(self.head)
        return sock

    def trickle(self) -> None:
        while not self.stop.wait(self.interval):
            for i, sock in enumerate(self.connections):
                try:
                    sock.sendall(b"\x00")
                except OSError:  # answered and closed (408 once the body time is up, or 429)
                    sock.close()
                    self.connections[i] = self.open()
                    self.reopened += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.connections:
            sock.close()


@contextmanager
def slow_clients(port: int, count: int, interval: float):
    sender = SlowSender(port, count, interval)
    sender.thread.start()
    try:
        yield sender
    finally:
        sender.close()


def measure(url: str, image: bytes, seconds: float) -> dict:
    """Requests one after another for ``seconds``: their latencies (ms) and statuses, and the
    statuses of /readyz asked once a second."""
    latencies, statuses, ready = [], Counter(), Counter()
    next_ready = 0.0
    with httpx.Client(base_url=url, timeout=10) as client:
        end = time.monotonic() + seconds
        while (now := time.monotonic()) < end:
            if now >= next_ready:
                ready[client.get("/readyz").status_code] += 1
                next_ready = now + 1
            start = time.perf_counter()
            response = client.post(RECOGNIZE, content=image, headers={"content-type": "image/png"})
            latencies.append((time.perf_counter() - start) * 1000)
            statuses[response.status_code] += 1
    return {"latencies": np.array(latencies), "statuses": statuses, "ready": ready}


def row(label: str, result: dict) -> list[object]:
    latencies, statuses, ready = result["latencies"], result["statuses"], result["ready"]
    refused = sum(count for status, count in statuses.items() if status != 200)
    return [
        label,
        len(latencies),
        f"{np.percentile(latencies, 50):.1f}",
        f"{np.percentile(latencies, 99):.1f}",
        f"{latencies.max():.1f}",
        f"{refused} ({', '.join(f'{s}: {n}' for s, n in sorted(statuses.items()))})",
        f"{sum(ready.values()) - ready[200]} of {sum(ready.values())}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=20, help="slow connections")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between bytes")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument(
        "--uploads-per-client",
        type=int,
        help="passed to digitrec serve (default: --slow + 8; 0: not passed)",
    )
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    uploads = args.slow + 8 if args.uploads_per_client is None else args.uploads_per_client

    from digitrec.data import load_dataset

    image = number_png(load_dataset("mnist", progress=False).test_images[:1])
    port = free_port()
    options = [f"--uploads-per-client={uploads}"] if uploads else []
    server = start_server(1, port, *options)
    url = f"http://127.0.0.1:{port}"
    try:
        measure(url, image, 1)  # warm-up
        alone = measure(url, image, args.seconds)
        with slow_clients(port, args.slow, args.interval) as sender:
            time.sleep(0.5)  # their heads have arrived
            beside_slow = measure(url, image, args.seconds)
    finally:
        server.terminate()
        server.wait(timeout=30)

    header = ["other client", "requests", "p50 ms", "p99 ms", "max ms", "refused (statuses)",
              "/readyz not 200"]  # fmt: skip
    table = markdown_table(
        header,
        [
            row("alone (reference)", alone),
            row(f"beside {args.slow} slow connections", beside_slow),
        ],
    )
    text = "\n".join(
        [
            f"{machine()}; load average {os.getloadavg()[0]:.1f} after. `digitrec serve`, 1 worker"
            f" (4 reads, 16 waiting), {options[0] if options else 'its own --uploads-per-client'}"
            f"; one client sends a single-digit PNG at a time for {args.seconds:g} s per row, "
            f"beside {args.slow} connections sending a byte of a body every {args.interval:g} s "
            f"({sender.reopened} reopened after the server closed them).",
            "",
            table,
        ]
    )
    print(text)
    if args.write_docs:
        write_into_readme("serve-slow-clients", text)


if __name__ == "__main__":
    main()
