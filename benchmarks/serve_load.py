"""Load on `digitrec serve`: throughput and latency under many concurrent clients on loopback.

Starts `digitrec serve` (default model, no access log) with each worker count, and drives it
with wrk (Debian's `wrk`, one load thread, keep-alive connections, bounded by `--seconds`):
POST /api/v1/recognize with a single-digit PNG and with a 5-digit number PNG (MNIST test digits
drawn dark on white, 4× enlarged, sent as the raw image/png body), and GET /healthz as the
reference, the cost of HTTP alone. The server and the load generator share the machine. Also
reports the CPU time of one in-process `Recognizer.read` of each image, and the server's and
wrk's CPU time per request, from which follows what an otherwise idle machine could serve.
Medians over `--runs`; `--write-readme` fills the serve block of its page under docs/benchmarks/.

    python benchmarks/serve_load.py [--workers 1 2] [--connections 16] [--seconds 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, markdown_table, median, write_into_readme

TARGET = "≥ 500 requests/s for single digits, p99 ≤ 50 ms, no errors"
WRK_SCRIPT = """
wrk.method = os.getenv("METHOD")
if os.getenv("BODY") ~= "" then
  wrk.headers["Content-Type"] = "image/png"
  local f = io.open(os.getenv("BODY"), "rb"); wrk.body = f:read("*a"); f:close()
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
"""


def number_png(digits: np.ndarray, scale: int = 4) -> bytes:
    """MNIST digits side by side, 4× larger, dark ink on white: a user's picture of a number."""
    row = np.concatenate([np.pad(d, ((4, 4), (4, 4))) for d in digits], axis=1)
    image = Image.fromarray(255 - row).resize((row.shape[1] * scale, row.shape[0] * scale))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def read_cpu_ms(image: bytes, repeats: int = 200) -> float:
    """CPU milliseconds of one in-process read of ``image`` (decode, segment, classify)."""
    from digitrec.read.recognizer import Recognizer

    recognizer = Recognizer.load("default", threads=1)
    recognizer.read(image)
    start = time.process_time()
    for _ in range(repeats):
        recognizer.read(image)
    return (time.process_time() - start) / repeats * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(workers: int, port: int, *options: str) -> subprocess.Popen:
    """`digitrec serve` on loopback, with other ``options``; returns once /readyz answers."""
    process = subprocess.Popen(
        [sys.executable, "-m", "digitrec", "serve", f"--port={port}", f"--workers={workers}",
         "--threads=1", "--log-level=warning", *options],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"digitrec serve --workers {workers} did not become ready")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (the uvicorn workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    ticks = 0
    for process in [pid, *map(int, children)]:
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(url: str, method: str, body: Path | None, connections: int, seconds: int, script: Path):
    """One wrk run: requests/s, p50 ms, p99 ms, errors (failed or non-2xx/3xx answers), and the
    CPU seconds wrk itself used."""
    env = {**os.environ, "METHOD": method, "BODY": str(body or "")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout=5s", "-s", str(script),
         url],
        env=env, capture_output=True, text=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))
    requests, duration_us, p50_us, p99_us, errors = map(int, line.split()[1:])
    return requests / (duration_us / 1e6), p50_us / 1000, p99_us / 1000, errors, wrk_cpu


def measure(url: str, method: str, body: Path | None, server_pid: int, args, script: Path):
    """Medians over ``args.runs`` wrk runs: requests/s, p50, p99, server and wrk CPU ms per
    request; and the errors of all runs together."""
    runs = []
    for _ in range(args.runs):
        cpu = cpu_seconds(server_pid)
        rps, p50, p99, errors, wrk_cpu = wrk(
            url, method, body, args.connections, args.seconds, script
        )
        requests = rps * args.seconds
        server_ms = (cpu_seconds(server_pid) - cpu) * 1000 / requests
        runs.append((rps, p50, p99, server_ms, wrk_cpu * 1000 / requests, errors))
    return [median([run[i] for run in runs]) for i in range(5)] + [sum(r[5] for r in runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--connections", type=int, default=16, help="concurrent clients")
    parser.add_argument("--seconds", type=int, default=5, help="length of one wrk run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")

    from digitrec.data import load_dataset

    data = load_dataset("mnist", progress=False)
    images = {"single digit": number_png(data.test_images[:1])}
    images["5-digit number"] = number_png(data.test_images[1:6])
    read_ms = {name: read_cpu_ms(image) for name, image in images.items()}
    load_before = os.getloadavg()[0]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "post.lua")
        script.write_text(WRK_SCRIPT)
        bodies = {name: Path(tmp, f"{i}.png") for i, name in enumerate(images)}
        for name, path in bodies.items():
            path.write_bytes(images[name])
        for workers in args.workers:
            port = free_port()
            server = start_server(workers, port)
            try:
                cases = [("GET /healthz (reference)", "GET", "/healthz", None)]
                cases += [
                    (f"{name} PNG", "POST", "/api/v1/recognize", bodies[name]) for name in images
                ]
                for label, method, path, body in cases:
                    url = f"http://127.0.0.1:{port}{path}"
                    rps, p50, p99, server_ms, wrk_ms, errors = measure(
                        url, method, body, server.pid, args, script
                    )
                    rows.append(
                        [label, workers, f"{rps:.0f}", f"{p50:.1f}", f"{p99:.1f}", errors,
                         f"{server_ms:.2f}", f"{wrk_ms:.2f}",
                         f"{os.cpu_count() / (server_ms + wrk_ms) * 1000:.0f}"]
                    )  # fmt: skip
                    print(rows[-1], flush=True)
            finally:
                server.terminate()
                server.wait(timeout=30)

    header = ["request", "workers", "requests/s", "p50 ms", "p99 ms", "errors (all runs)",
              "server CPU ms/req", "wrk CPU ms/req", "idle-machine bound req/s"]  # fmt: skip
    table = markdown_table(header, rows)
    met = any(
        row[0].startswith("single") and float(row[2]) >= 500 and float(row[4]) <= 50 and not row[5]
        for row in rows
    )
    reads = ", ".join(f"{name} {ms:.2f} ms" for name, ms in read_ms.items())
    text = "\n".join(
        [
            f"{machine()}; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
            f"(other work on the machine). wrk, 1 thread, {args.connections} connections, "
            f"{args.seconds} s per run, median of {args.runs} runs; server (`digitrec serve`, "
            "default model, ONNX threads=1 per worker, no access log) and wrk on the same machine.",
            "",
            table,
            "",
            f"CPU time of one in-process `Recognizer.read` (decode, segment, classify): {reads}. "
            "The idle-machine bound is cores / (server + wrk CPU per request): the throughput "
            "if nothing else ran. "
            f"Target ({TARGET}): {'met' if met else 'not met'} in this run.",
        ]
    )
    print(text)
    if args.write_readme:
        write_into_readme("serve", text)


if __name__ == "__main__":
    main()
