"""The service's bounds: images read at once and waiting, the body's size and time, and on a
real uvicorn server over loopback, the size and time of request headers and lying framing."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx
import pytest
from live_server import connect, exchange, serving, statuses
from serve_support import PNG, RECOGNIZE, default_recognizer, drawn_ones

from digitrec.serve.app import ServeSettings, create_app


@pytest.fixture(scope="module")
def recognizer():
    return default_recognizer()


class HeldRecognizer:
    """The real recognizer, except that each read waits until the test lets it go."""

    def __init__(self, recognizer) -> None:
        self.recognizer = recognizer
        self.metadata, self.classes = recognizer.metadata, recognizer.classes
        self.threshold, self.temperature = recognizer.threshold, recognizer.temperature
        self.released = threading.Event()
        self.reads = 0

    def read(self, image, **options):
        self.reads += 1
        assert self.released.wait(timeout=10), "the test never released the reads"
        return self.recognizer.read(image, **options)


async def eventually(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


def test_a_full_worker_answers_503_with_retry_after_and_is_not_ready_until_it_has_room(
    recognizer,
):
    """One read running, one waiting: a third request is refused at once, not queued."""
    held = HeldRecognizer(recognizer)
    app = create_app(held, ServeSettings(concurrent_reads=1, queued_reads=1))
    transport = httpx.ASGITransport(app=app)

    async def scenario():
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:

            def post():
                return http.post(RECOGNIZE, content=drawn_ones(), headers=PNG)

            admitted = [asyncio.create_task(post()) for _ in range(2)]
            await eventually(lambda: app.state.capacity.admitted == 2 and held.reads == 1)
            refused, busy, alive = (
                await post(),
                await http.get("/readyz"),
                await http.get("/healthz"),
            )
            held.released.set()
            done = await asyncio.gather(*admitted)
            return refused, busy, alive, done, await http.get("/readyz")

    refused, busy, alive, done, ready = asyncio.run(scenario())
    for response in (refused, busy):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert "try again" in response.json()["error"]
    assert alive.status_code == 200
    assert [r.json()["text"] for r in done] == ["1", "1"]
    assert held.reads == 2
    assert ready.json() == {"status": "ready"}
    assert app.state.capacity.admitted == 0


def test_a_request_whose_client_leaves_while_it_waits_frees_its_place_unread(recognizer):
    """A read nobody waits for would only delay, and its place refuse, those still waiting."""
    held = HeldRecognizer(recognizer)
    app = create_app(held, ServeSettings(concurrent_reads=1, queued_reads=1))
    transport = httpx.ASGITransport(app=app)
    body = drawn_ones()
    sent: list[dict] = []
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def scenario():
        left = asyncio.Event()

        async def receive() -> dict:  # the body, then nothing until the client leaves
            message = next(messages, None)
            if message is None:
                await left.wait()
                return {"type": "http.disconnect"}
            return message

        async def send(message: dict) -> None:
            sent.append(message)

        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            running = asyncio.create_task(http.post(RECOGNIZE, content=body, headers=PNG))
            await eventually(lambda: held.reads == 1)
            length = [(b"content-length", str(len(body)).encode())]
            waiting = asyncio.create_task(app(recognize_scope(app, length), receive, send))
            await eventually(lambda: app.state.capacity.admitted == 2)
            left.set()
            await asyncio.wait_for(waiting, 5)  # over while the first read is still held
            places_taken = app.state.capacity.admitted
            held.released.set()
            return places_taken, await running

    places_taken, done = asyncio.run(scenario())
    assert places_taken == 1
    assert done.json()["text"] == "1"
    assert held.reads == 1  # the request whose client left was never read
    assert sent[0]["status"] == 400
    assert "went away" in json.loads(sent[1]["body"])["error"]
    assert app.state.capacity.admitted == 0


def test_no_more_images_are_read_at_once_than_the_setting_allows(recognizer):
    """Each read can take a lot of memory (up to the pixel limit), so their number is bounded."""
    running, most = 0, 0
    lock = threading.Lock()

    class SlowRecognizer:
        metadata, classes = recognizer.metadata, recognizer.classes

        def read(self, image, **options):
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.05)
            with lock:
                running -= 1
            return recognizer.read(image, **options)

    def post(url: str) -> int:
        return httpx.post(url + RECOGNIZE, content=drawn_ones(), headers=PNG).status_code

    app = create_app(SlowRecognizer(), ServeSettings(concurrent_reads=2))
    with serving(app) as url, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(post, [url] * 8))
    assert codes == [200] * 8
    assert most == 2


def recognize_scope(app, headers: list[tuple[bytes, bytes]], client: str = "127.0.0.1") -> dict:
    """The ASGI scope of a POST to /api/v1/recognize with an image/png body from ``client``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": RECOGNIZE,
        "raw_path": RECOGNIZE.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"content-type", b"image/png"), *headers],
        "client": (client, 1),
        "server": ("127.0.0.1", 80),
        "state": {},
        "app": app,
    }


def call(app, headers: list[tuple[bytes, bytes]], receive) -> list[dict]:
    """Run one request through the ASGI app; the messages it sent."""
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(recognize_scope(app, headers), receive, send))
    return sent


def test_a_streamed_body_is_cut_off_with_413_once_it_passes_the_limit(recognizer):
    """A chunked body with no Content-Length that never ends: reading stops at the limit."""
    app = create_app(recognizer, ServeSettings(max_body_bytes=10_000))
    chunks_read = 0

    async def endless_body() -> dict:
        nonlocal chunks_read
        chunks_read += 1
        return {"type": "http.request", "body": b"\x89PNG" + b"x" * 1020, "more_body": True}

    sent = call(app, [(b"transfer-encoding", b"chunked")], endless_body)
    assert sent[0]["status"] == 413
    assert chunks_read <= 11
    assert "limit" in json.loads(sent[1]["body"])["error"]


def test_a_body_that_does_not_arrive_in_time_is_408_and_frees_its_place(recognizer):
    app = create_app(recognizer, ServeSettings(body_timeout=0.2, concurrent_reads=1))

    async def stalled_body() -> dict:
        await asyncio.sleep(60)
        raise AssertionError("the body was awaited past its time limit")

    start = time.monotonic()
    sent = call(app, [(b"content-length", b"5000")], stalled_body)
    assert time.monotonic() - start < 5
    assert sent[0]["status"] == 408
    assert "0.2 s" in json.loads(sent[1]["body"])["error"]
    assert app.state.capacity.admitted == 0


def test_a_client_that_disconnects_mid_body_ends_the_request_quietly(recognizer):
    app = create_app(recognizer)

    async def disconnect() -> dict:
        return {"type": "http.disconnect"}

    sent = call(app, [(b"content-length", b"5000")], disconnect)
    assert sent[0]["status"] == 400
    assert app.state.capacity.admitted == 0


def trickled(body: bytes, finished: asyncio.Event):
    """An ASGI ``receive`` of a client that sends a body's first byte, and the rest only once
    ``finished`` is set; then nothing (it waits for its answer)."""
    messages = [
        {"type": "http.request", "body": body[1:], "more_body": False},
        {"type": "http.request", "body": body[:1], "more_body": True},
    ]

    async def receive() -> dict:
        if len(messages) == 1:
            await finished.wait()
        if not messages:
            await asyncio.Event().wait()
        return messages.pop()

    return receive


def status_and_error(sent: list[dict]) -> tuple[int, dict, str | None]:
    """The status, headers and error message of an answer the ASGI app sent."""
    headers = {name.decode(): value.decode() for name, value in sent[0]["headers"]}
    return sent[0]["status"], headers, json.loads(sent[1]["body"]).get("error")


def test_slow_bodies_take_no_read_place_and_one_client_sends_only_its_share_at_once(recognizer):
    """A body still arriving held one of the worker's read places: a few clients sending
    bodies slowly made it refuse everyone else, and /readyz report it busy. It now takes one
    only once it has arrived, and one client address may be sending only so many bodies at once
    (429 beyond them)."""
    app = create_app(
        recognizer, ServeSettings(concurrent_reads=1, queued_reads=2, uploads_per_client=3)
    )
    body = drawn_ones()
    length = [(b"content-length", str(len(body)).encode())]

    async def post(client: str, receive) -> list[dict]:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        await app(recognize_scope(app, length, client), receive, send)
        return sent

    async def scenario():
        finished, at_once = asyncio.Event(), asyncio.Event()
        at_once.set()
        slow = [asyncio.create_task(post("127.0.0.1", trickled(body, finished))) for _ in range(3)]
        await eventually(lambda: app.state.uploads.arriving["127.0.0.1"] == 3)
        one_more = await post("127.0.0.1", trickled(body, at_once))
        other = await post("::1", trickled(body, at_once))
        places_taken = app.state.capacity.admitted
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        ) as http:
            ready = await http.get("/readyz")
        finished.set()
        return one_more, other, places_taken, ready, await asyncio.gather(*slow)

    one_more, other, places_taken, ready, slow = asyncio.run(scenario())
    status, headers, error = status_and_error(one_more)
    assert (status, headers["retry-after"]) == (429, "1")
    assert "already sending 3 request bodies" in error
    assert status_and_error(other)[0] == 200
    assert places_taken == 0
    assert ready.status_code == 200
    assert [status_and_error(sent)[0] for sent in slow] == [200] * 3
    assert not app.state.uploads.arriving
    assert app.state.capacity.admitted == 0


# --- a real server over loopback ---------------------------------------------------------------


@pytest.fixture(scope="module")
def live_server(recognizer):
    """The app with short time limits, on uvicorn as ``digitrec serve`` runs it."""
    app = create_app(recognizer, ServeSettings(body_timeout=0.5))
    with serving(app, timeout=0.5) as url:
        yield url


def test_connections_trickling_bodies_do_not_keep_other_requests_from_being_read(recognizer):
    """20 connections sending a body a byte at a time held all 20 places of a worker (4 reads,
    16 waiting), which then refused every other request with 503 and reported itself busy."""
    app = create_app(recognizer, ServeSettings(uploads_per_client=24))
    head = (
        f"POST {RECOGNIZE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        "Content-Length: 10000\r\n\r\n"
    ).encode()
    with serving(app) as url, ExitStack() as stack:
        slow = [stack.enter_context(connect(url)) for _ in range(20)]
        for sock in slow:
            sock.sendall(head + b"\x89")
        asyncio.run(eventually(lambda: app.state.uploads.arriving["127.0.0.1"] == 20))
        answers = [httpx.post(url + RECOGNIZE, content=drawn_ones(), headers=PNG) for _ in range(5)]
        ready = httpx.get(url + "/readyz")
        still_arriving = app.state.uploads.arriving["127.0.0.1"]
    assert [answer.status_code for answer in answers] == [200] * 5
    assert [answer.json()["text"] for answer in answers] == ["1"] * 5
    assert ready.status_code == 200
    assert still_arriving == 20


def test_the_live_server_answers_concurrent_requests(live_server):
    images = [drawn_ones(n) for n in (1, 2, 3)] * 10

    def post(image: bytes) -> httpx.Response:
        return httpx.post(live_server + RECOGNIZE, content=image, headers=PNG)

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(post, images))
    assert [r.status_code for r in responses] == [200] * len(images)
    assert [r.json()["text"] for r in responses] == ["1", "11", "111"] * 10


def test_the_live_server_refuses_a_huge_declared_body_before_it_is_sent(live_server):
    """Only the headers go out; the 413 must come back without the server awaiting 20 MB."""
    request = (
        f"POST {RECOGNIZE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        f"Content-Length: {20 * 1024 * 1024}\r\nConnection: close\r\n\r\n"
    )
    reply, _ = exchange(live_server, request.encode())
    assert statuses(reply) == [413]
    assert b"limit" in reply
    assert httpx.get(live_server + "/healthz").status_code == 200


@pytest.mark.parametrize(
    ("header_kb", "status"), [(14, 200), (20, 400), (4096, 400)], ids=["14 KB", "20 KB", "4 MB"]
)
def test_headers_over_the_size_limit_are_refused_at_once_and_the_server_keeps_answering(
    live_server, header_kb, status
):
    """16 KB of request line and headers at most, even when they arrive in one read; a 4 MB
    header is not read, let alone kept."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Pad: "
    reply, seconds = exchange(live_server, request + b"a" * (header_kb << 10) + b"\r\n\r\n")
    assert statuses(reply) == [status]
    assert seconds < 3
    assert httpx.get(live_server + "/healthz", timeout=2).status_code == 200


@pytest.mark.parametrize("after_a_request", [False, True], ids=["new", "kept alive"])
def test_a_connection_that_sends_its_headers_too_slowly_is_closed(live_server, after_a_request):
    """Headers that never end hold a connection: closed after the timeout (0.5 s here)."""
    with connect(live_server) as sock:
        if after_a_request:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while not answer.endswith(b'{"status":"ok"}'):
                answer += sock.recv(4096)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        start = time.monotonic()
        assert httpx.get(live_server + "/healthz", timeout=2).status_code == 200
        assert sock.recv(4096) == b""  # closed by the server, without an answer
        assert time.monotonic() - start < 3


ONE = drawn_ones()
LYING_REQUESTS = {
    "length longer than the body, then silence": (
        b"Content-Length: 100000\r\n\r\n\x89PNG\r\n",
        [408],
    ),
    "length shorter than the body": (
        f"Content-Length: {len(ONE)}\r\n\r\n".encode() + ONE + b"\x00 and more bytes\r\n\r\n",
        [200, 400],  # the image as declared is read; what follows is no request
    ),
    "length not a number": (b"Content-Length: lots\r\n\r\nabc", [400]),
    "negative length": (b"Content-Length: -5\r\n\r\nabc", [400]),
    "two different lengths": (b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", [400]),
    "length and chunked": (  # RFC 9112: read as chunked, then the connection is closed
        b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        [422],
    ),
    "broken chunks": (b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n", [400]),
}


@pytest.mark.parametrize(("framing", "expected"), LYING_REQUESTS.values(), ids=LYING_REQUESTS)
def test_lying_or_broken_body_framing_gets_a_4xx_and_the_server_keeps_answering(
    live_server, framing, expected
):
    head = f"POST {RECOGNIZE} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
    reply, _ = exchange(live_server, head.encode() + framing)
    assert statuses(reply) == expected
    assert httpx.get(live_server + "/readyz", timeout=2).status_code == 200
