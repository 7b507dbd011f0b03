"""The web service: every endpoint, every error, the body limit, start-up, fuzzing and the CLI."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import free_port, serving, wait_until_ready
from PIL import Image, ImageDraw

from digitrec.cli import main
from digitrec.recognizer import Recognizer
from digitrec.serve.app import STATIC_DIR, ServeSettings, create_app

RECOGNIZE = "/api/v1/recognize"


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def drawn_ones(count: int = 1, size: int = 120) -> bytes:
    """Dark strokes on white, as the drawing page sends them: ``count`` upright ones in a row."""
    image = Image.new("L", (size * count, size), 255)
    draw = ImageDraw.Draw(image)
    for i in range(count):
        x = i * size + size // 2
        draw.line([(x, size // 6), (x, size - size // 6)], fill=0, width=size // 10)
    return png_bytes(image)


def mnist_as_drawn(digits: np.ndarray, scale: int = 4) -> bytes:
    """MNIST test digits side by side, enlarged, dark ink on white: a user's image of a number."""
    row = np.concatenate([np.pad(d, ((4, 4), (4, 4))) for d in digits], axis=1)
    image = Image.fromarray(255 - row).resize((row.shape[1] * scale, row.shape[0] * scale))
    return png_bytes(image)


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load("default", threads=1)


@pytest.fixture(scope="module")
def client(recognizer: Recognizer):
    with TestClient(create_app(recognizer)) as client:
        yield client


def small_limits_client(recognizer: Recognizer, **limits) -> TestClient:
    return TestClient(create_app(recognizer, ServeSettings(**limits)))


# --- recognition -------------------------------------------------------------------------------


def test_recognize_answers_the_reading_of_the_recognizer_plus_normalized_images(client, recognizer):
    image = drawn_ones(2)
    response = client.post(RECOGNIZE, files={"image": ("ones.png", image, "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    reading = recognizer.read(image)
    assert {k: v for k, v in body.items() if k != "normalized"} == json.loads(
        json.dumps({**reading.to_dict(), "error": None})
    )
    assert len(body["digits"]) == 2
    assert body["text"] == "11"
    for encoded, expected in zip(body["normalized"], reading.normalized, strict=True):
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))
        assert decoded.shape == (28, 28)
        assert np.abs(decoded / 255.0 - expected).max() <= 1 / 255 + 1e-6


def test_recognize_accepts_the_raw_body_with_an_image_content_type(client):
    image = drawn_ones(1)
    raw = client.post(RECOGNIZE, content=image, headers={"content-type": "image/png"})
    form = client.post(RECOGNIZE, files={"image": ("one.png", image, "image/png")})
    assert raw.status_code == 200, raw.text
    assert raw.json() == form.json()


def test_recognize_reads_mnist_digits_and_numbers_drawn_as_dark_ink_on_white(client, mnist):
    labels, images = mnist.test_labels, mnist.test_images
    picks = [int(np.flatnonzero(labels == d)[0]) for d in (3, 8, 5)]
    single = client.post(
        RECOGNIZE, content=mnist_as_drawn(images[picks[:1]]), headers={"content-type": "image/png"}
    ).json()
    assert single["text"] == "3"
    number = client.post(
        RECOGNIZE, content=mnist_as_drawn(images[picks]), headers={"content-type": "image/png"}
    ).json()
    assert number["text"] == "385"
    assert [d["box"][0] for d in number["digits"]] == sorted(d["box"][0] for d in number["digits"])


def test_single_reads_the_whole_image_as_one_digit_and_top_k_sets_the_list_length(client):
    image = drawn_ones(3)
    body = client.post(
        RECOGNIZE,
        params={"single": "true", "top_k": 5},
        content=image,
        headers={"content-type": "image/png"},
    ).json()
    assert len(body["digits"]) == 1
    assert len(body["normalized"]) == 1
    assert len(body["digits"][0]["top"]) == 5


def test_a_blank_image_reads_as_no_digits(client):
    blank = png_bytes(np.full((100, 100), 255, np.uint8))
    body = client.post(RECOGNIZE, content=blank, headers={"content-type": "image/png"}).json()
    assert body == {"text": "", "digits": [], "error": None, "normalized": []}


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{"top_k": 0}, {"top_k": 11}, {"top_k": "three"}, {"single": "maybe"}],
    ids=["top_k=0", "top_k=11", "top_k=text", "single=maybe"],
)
def test_bad_query_values_are_422_naming_the_parameter(client, params):
    response = client.post(
        RECOGNIZE, params=params, content=drawn_ones(), headers={"content-type": "image/png"}
    )
    assert response.status_code == 422
    assert next(iter(params)) in response.json()["error"]


@pytest.mark.parametrize(
    "headers",
    [{"content-type": "text/plain"}, {"content-type": "application/json"}, {}],
    ids=["text", "json", "none"],
)
def test_a_body_that_is_not_an_image_is_415(client, headers):
    response = client.post(RECOGNIZE, content=b"hello", headers=headers)
    assert response.status_code == 415
    assert "image" in response.json()["error"]


def test_a_form_file_that_is_not_an_image_is_415(client):
    response = client.post(RECOGNIZE, files={"image": ("notes.txt", b"hello", "text/plain")})
    assert response.status_code == 415
    assert "text/plain" in response.json()["error"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a picture", "not an image"),
        (b"", "empty"),
        (drawn_ones()[:60], "truncated"),
    ],
    ids=["text", "empty", "truncated"],
)
def test_undecodable_images_are_422_with_the_reason(client, content, message):
    response = client.post(RECOGNIZE, content=content, headers={"content-type": "image/png"})
    assert response.status_code == 422
    assert message in response.json()["error"].lower()


def test_a_form_without_the_image_field_is_422(client):
    response = client.post(RECOGNIZE, files={"picture": ("one.png", drawn_ones(), "image/png")})
    assert response.status_code == 422
    assert "'image'" in response.json()["error"]


def test_an_image_over_the_pixel_limit_is_422(recognizer):
    with small_limits_client(recognizer, max_pixels=10_000) as client:
        image = png_bytes(np.full((200, 200), 255, np.uint8))
        response = client.post(RECOGNIZE, content=image, headers={"content-type": "image/png"})
    assert response.status_code == 422
    assert "limit" in response.json()["error"]


def test_a_body_declared_over_the_limit_is_413_without_being_read(recognizer):
    with small_limits_client(recognizer, max_body_bytes=1000) as client:
        image = png_bytes(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
        assert len(image) > 1000
        raw = client.post(RECOGNIZE, content=image, headers={"content-type": "image/png"})
        form = client.post(RECOGNIZE, files={"image": ("big.png", image, "image/png")})
    for response in (raw, form):
        assert response.status_code == 413
        assert "limit" in response.json()["error"]


def recognize_scope(app, headers: list[tuple[bytes, bytes]]) -> dict:
    """The ASGI scope of a POST to /api/v1/recognize with an image/png body."""
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
        "headers": [(b"content-type", b"image/png"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
        "app": app,
    }


def test_a_streamed_body_is_cut_off_with_413_once_it_passes_the_limit(recognizer):
    """A chunked body with no Content-Length that never ends: reading stops at the limit."""
    app = create_app(recognizer, ServeSettings(max_body_bytes=10_000))
    chunks_read = 0
    sent: list[dict] = []

    async def endless_body() -> dict:
        nonlocal chunks_read
        chunks_read += 1
        return {"type": "http.request", "body": b"\x89PNG" + b"x" * 1020, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = recognize_scope(app, [(b"transfer-encoding", b"chunked")])
    asyncio.run(app(scope, endless_body, send))
    assert sent[0]["status"] == 413
    assert chunks_read <= 11
    assert "limit" in json.loads(sent[1]["body"])["error"]


def test_a_client_that_disconnects_mid_body_ends_the_request_quietly(recognizer):
    app = create_app(recognizer)
    sent: list[dict] = []

    async def disconnect() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(recognize_scope(app, [(b"content-length", b"5000")]), disconnect, send))
    assert sent[0]["status"] == 400


def test_unknown_paths_are_404_as_json(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found"}


# --- model, health, docs, page -----------------------------------------------------------------


def test_model_card_describes_the_served_model(client, recognizer):
    response = client.get("/api/v1/model")
    assert response.status_code == 200
    card = response.json()
    assert card["name"] == recognizer.metadata["model_name"]
    assert card["classes"] == [str(d) for d in range(10)]
    assert card["test_accuracy"] == recognizer.metadata["test_accuracy"]
    assert card["threshold"] == recognizer.threshold
    assert card["metadata"] == json.loads(json.dumps(recognizer.metadata))


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_before_the_model_is_loaded_readyz_and_recognize_are_503():
    client = TestClient(create_app())  # lifespan not entered: no model yet
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    response = client.post(RECOGNIZE, content=drawn_ones(), headers={"content-type": "image/png"})
    assert response.status_code == 503
    assert "not loaded" in response.json()["error"]


def test_the_model_is_loaded_once_at_start_up_and_released_at_shutdown(monkeypatch):
    loads = []
    real_load = Recognizer.load

    def counting_load(*args, **kwargs):
        loads.append(args)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(Recognizer, "load", counting_load)
    app = create_app(settings=ServeSettings(model="default"))
    with TestClient(app) as client:
        for _ in range(3):
            response = client.post(
                RECOGNIZE, content=drawn_ones(), headers={"content-type": "image/png"}
            )
            assert response.status_code == 200
    assert len(loads) == 1
    assert app.state.recognizer is None


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/openapi.json").json()
    assert {"/api/v1/recognize", "/api/v1/model", "/healthz", "/readyz"} <= set(schema["paths"])
    body = schema["paths"]["/api/v1/recognize"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    assert "image/png" in body
    assert client.get("/docs").status_code == 200


def test_the_drawing_page_is_served_with_its_test_hooks_and_no_outside_resources(client):
    page = client.get("/")
    assert page.status_code == 200
    for hook in ('data-testid="pad"', 'data-testid="result"', 'data-testid="clear"'):
        assert hook in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert "http://" not in text
        assert "https://" not in text
        assert "//cdn" not in text


# --- robustness --------------------------------------------------------------------------------


def png_strategy() -> st.SearchStrategy[bytes]:
    """Bodies for image/png: real small PNGs of random ink, and random bytes."""
    arrays = st.tuples(st.integers(1, 64), st.integers(1, 64), st.integers(0, 2**32 - 1)).map(
        lambda s: np.random.default_rng(s[2]).integers(0, 256, (s[0], s[1]), dtype=np.uint8)
    )
    return st.one_of(arrays.map(png_bytes), st.binary(max_size=512))


schemathesis.openapi.media_type("image/png", png_strategy(), aliases=["image/jpeg"])


def test_fuzzed_requests_from_the_openapi_schema_never_get_a_5xx(recognizer):
    """Requests that fit the schema and requests that break it, for every operation."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(recognizer))
    cases = st.one_of(
        operation.ok().as_strategy(mode)
        for operation in schema.get_all_operations()
        for mode in schemathesis.GenerationMode
    )

    @given(cases)
    @settings(
        max_examples=50, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    def no_server_error(case) -> None:
        response = case.call()
        assert response.status_code < 500, f"{case.method} {case.path}: {response.text}"

    no_server_error()


@pytest.fixture(scope="module")
def live_server(recognizer):
    with serving(create_app(recognizer)) as url:
        yield url


def test_the_live_server_answers_concurrent_requests(live_server):
    images = [drawn_ones(n) for n in (1, 2, 3)] * 10

    def post(image: bytes) -> httpx.Response:
        return httpx.post(
            live_server + RECOGNIZE, content=image, headers={"content-type": "image/png"}
        )

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(post, images))
    assert [r.status_code for r in responses] == [200] * len(images)
    assert [r.json()["text"] for r in responses] == ["1", "11", "111"] * 10


def test_no_more_images_are_read_at_once_than_the_setting_allows(recognizer):
    """Each read can take a lot of memory (up to the pixel limit), so their number is bounded."""
    running, most = 0, 0
    lock = threading.Lock()

    class SlowRecognizer:
        metadata, classes = recognizer.metadata, recognizer.classes

        def read(self, image, single=False, top_k=3):
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.05)
            with lock:
                running -= 1
            return recognizer.read(image, single, top_k)

    def post(url: str) -> int:
        headers = {"content-type": "image/png"}
        return httpx.post(url + RECOGNIZE, content=drawn_ones(), headers=headers).status_code

    app = create_app(SlowRecognizer(), ServeSettings(concurrent_reads=2))
    with serving(app) as url, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(post, [url] * 8))
    assert codes == [200] * 8
    assert most == 2


def test_the_live_server_refuses_a_huge_declared_body_before_it_is_sent(live_server):
    """Only the headers go out; the 413 must come back without the server awaiting 20 MB."""
    host, port = live_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST {RECOGNIZE} HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n"
            f"Content-Length: {20 * 1024 * 1024}\r\n\r\n".encode()
        )
        reply = sock.recv(65536).decode("latin-1")
    assert reply.startswith("HTTP/1.1 413")
    assert "limit" in reply
    assert httpx.get(live_server + "/healthz").status_code == 200


# --- command line ------------------------------------------------------------------------------


def test_serve_reports_a_missing_model_as_a_plain_error(tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "missing.onnx")]) == 2
    assert "missing.onnx" in capsys.readouterr().err


def test_serve_rejects_a_non_positive_worker_count(capsys):
    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_digitrec_serve_runs_workers_and_shuts_down_gracefully_on_sigterm():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "digitrec", "serve", "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, process=process)
        response = httpx.post(
            url + RECOGNIZE, files={"image": ("one.png", drawn_ones(), "image/png")}
        )
        assert response.json()["text"] == "1"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Traceback" not in process.stdout.read()


def test_the_service_never_imports_tensorflow_or_keras():
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "import digitrec.cli.serve\n"
        "from digitrec.serve.app import create_app, ServeSettings\n"
        "with TestClient(create_app(settings=ServeSettings())) as client:\n"
        "    client.get('/api/v1/model').raise_for_status()\n"
        "    client.post('/api/v1/recognize', content=sys.stdin.buffer.read(),\n"
        "                headers={'content-type': 'image/png'}).raise_for_status()\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent / "src")}
    result = subprocess.run(
        [sys.executable, "-c", code], input=drawn_ones(), capture_output=True, env=env
    )
    assert result.returncode == 0, result.stderr.decode()
