"""The web service against hostile or broken requests: Host names (DNS rebinding), security
headers, errors as JSON, broken bodies and wrong content types, and fuzzing from the schema
(corrections too, where they are collected)."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import connect, serving, statuses
from serve_support import PNG, RECOGNIZE, default_recognizer, drawn_ones, local_client, png_bytes

from digitrec.serve.app import STATIC_DIR, ServeSettings, create_app
from digitrec.serve.middleware import PAGE_POLICY

CORRECTIONS = "/api/v1/corrections"


@pytest.fixture(scope="module")
def client():
    with local_client(create_app(default_recognizer())) as client:
        yield client


# --- hosts, security headers, errors as JSON ---------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:80", "[::1]:8000"])
def test_the_local_host_names_are_answered_by_default(client, host):
    assert client.get("/healthz", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "10.0.0.1", "", "a b"])
def test_other_host_names_get_400_as_json_against_dns_rebinding(client, host):
    response = client.get("/api/v1/model", headers={"host": host})
    assert response.status_code == 400
    assert "host" in response.json()["error"].lower()
    assert response.headers["x-frame-options"] == "DENY"


def test_allowed_hosts_name_the_hosts_answered_and_a_star_allows_any():
    def app(*hosts: str):
        return create_app(default_recognizer(), ServeSettings(allowed_hosts=hosts))

    named = local_client(app("*.example"))
    assert named.get("/healthz", headers={"host": "api.example"}).status_code == 200
    assert named.get("/healthz", headers={"host": "localhost"}).status_code == 400
    anything = local_client(app("*"))
    assert anything.get("/healthz", headers={"host": "evil.example"}).status_code == 200


SECURITY_HEADERS_SENT = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def security_headers_of(response) -> dict[str, str]:
    return {name: response.headers.get(name) for name in SECURITY_HEADERS_SENT}


def test_every_response_has_the_security_headers_and_the_page_its_content_policy():
    app = create_app(default_recognizer(), ServeSettings(max_body_bytes=10))
    with local_client(app) as client:
        responses = [
            client.get("/"),
            client.get("/static/app.js"),
            client.get("/favicon.ico"),
            client.get("/static/swagger/swagger-ui.css"),
            client.get("/api/v1/model"),
            client.get("/nothing"),
            client.post(RECOGNIZE, content=drawn_ones(), headers=PNG),  # 413
            client.get("/healthz", headers={"host": "evil.example"}),
        ]
    for response in responses:
        assert security_headers_of(response) == SECURITY_HEADERS_SENT
        policy = response.headers["content-security-policy"]
        assert "script-src 'self';" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy


@pytest.fixture(scope="module")
def live_server():
    with serving(create_app(default_recognizer())) as url:
        yield url


def raw_answer(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as it is on a new connection; the status, headers and body of the first
    answer (the server closes the connection after it, or the request says it may)."""
    with connect(url) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    return statuses(reply)[0], headers, body


@pytest.mark.parametrize(
    "request_bytes",
    [b"garbage\r\n\r\n", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 20_000],
    ids=["not HTTP", "headers over the limit"],
)
def test_requests_the_http_parser_refuses_get_400_as_json_with_the_security_headers(
    live_server, request_bytes
):
    """The parser's own answers came without the app's headers (and as plain text)."""
    status, headers, body = raw_answer(live_server, request_bytes)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert "not valid HTTP" in json.loads(body)["error"]
    assert {name: headers.get(name) for name in SECURITY_HEADERS_SENT} == SECURITY_HEADERS_SENT
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_a_websocket_upgrade_is_answered_as_plain_http_with_the_security_headers(live_server):
    """The service has no WebSocket endpoint: uvicorn's 403 for one came without the app's
    headers. The app now answers the request itself (404: no such page), and nothing switches."""
    upgrade = (
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, close\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    status, headers, body = raw_answer(live_server, upgrade)
    assert status == 404
    assert json.loads(body) == {"error": "Not Found"}
    assert {name: headers.get(name) for name in SECURITY_HEADERS_SENT} == SECURITY_HEADERS_SENT
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_the_page_needs_nothing_its_content_policy_forbids():
    """No inline script or style, no event handler attributes: the policy allows none."""
    page = (STATIC_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", page)
    script = (STATIC_DIR / "app.js").read_text()
    assert "eval(" not in script
    assert "new Function" not in script
    assert not re.search(r"innerHTML[^;]*style=", script)


def test_the_api_docs_have_the_page_policy_that_allows_their_one_inline_script_by_its_hash(
    client,
):
    """The docs went without a Content Security Policy, to load Swagger UI from a CDN."""
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert security_headers_of(docs) == SECURITY_HEADERS_SENT
    [script] = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = docs.headers["content-security-policy"]
    assert f"script-src 'self' 'sha256-{digest}';" in policy
    assert policy.replace(f" 'sha256-{digest}'", "") == PAGE_POLICY


def test_a_failure_of_the_server_itself_is_500_as_json_with_the_security_headers():
    class BrokenRecognizer:
        def read(self, image, **options):
            raise RuntimeError("a bug")

    app = create_app(BrokenRecognizer())
    client = TestClient(app, base_url="http://localhost", raise_server_exceptions=False)
    response = client.post(RECOGNIZE, content=drawn_ones(), headers=PNG)
    assert response.status_code == 500
    assert response.json() == {"error": "the server failed to handle this request"}
    assert security_headers_of(response)["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert app.state.capacity.admitted == 0


def test_a_method_not_allowed_is_405_as_json_with_the_allowed_methods(client):
    response = client.delete(RECOGNIZE)
    assert response.status_code == 405
    assert response.json() == {"error": "Method Not Allowed"}
    assert response.headers["allow"] == "POST"


# --- writes from other sites' pages ------------------------------------------------------------

ANOTHER_SITES_PAGE = {  # what a browser sends with a POST from a page that is not the service's
    "cross-site": {"origin": "http://evil.example", "sec-fetch-site": "cross-site"},
    "same site, another origin": {"origin": "http://evil.localhost", "sec-fetch-site": "same-site"},
    "another Origin, no Sec-Fetch-Site": {"origin": "http://evil.example"},
    "another port, no Sec-Fetch-Site": {"origin": "http://localhost:8001"},
    "sandboxed page": {"origin": "null"},
}
NOT_ANOTHER_SITES_PAGE = {
    "the service's own page": {"origin": "http://localhost", "sec-fetch-site": "same-origin"},
    "its own page, no Sec-Fetch-Site": {"origin": "http://localhost"},
    "the user's own doing": {"sec-fetch-site": "none"},
    "not a browser": {},
}


def collecting_client(folder) -> TestClient:
    return local_client(create_app(default_recognizer(), ServeSettings(collect_dir=str(folder))))


def correction_of_one() -> dict:
    return {"files": {"image": ("one.png", drawn_ones(), "image/png")}, "data": {"digits": "1"}}


@pytest.mark.parametrize("headers", ANOTHER_SITES_PAGE.values(), ids=ANOTHER_SITES_PAGE)
def test_a_write_from_another_sites_page_is_403_and_stores_nothing(tmp_path, headers):
    """Any page a user visited could store corrections in the collection (it got 201)."""
    with collecting_client(tmp_path) as client:
        stored = client.post(CORRECTIONS, headers=headers, **correction_of_one())
        read = client.post(RECOGNIZE, content=drawn_ones(), headers={**PNG, **headers})
        config = client.get("/api/v1/config", headers=headers)
    for response in (stored, read):
        assert response.status_code == 403
        assert "from another site's page" in response.json()["error"]
        assert security_headers_of(response) == SECURITY_HEADERS_SENT
    assert config.status_code == 200  # reading is not refused
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("headers", NOT_ANOTHER_SITES_PAGE.values(), ids=NOT_ANOTHER_SITES_PAGE)
def test_writes_from_the_services_own_page_and_from_other_clients_are_taken(tmp_path, headers):
    with collecting_client(tmp_path) as client:
        stored = client.post(CORRECTIONS, headers=headers, **correction_of_one())
    assert stored.status_code == 201, stored.text


# --- robustness --------------------------------------------------------------------------------


def multipart(*parts: bytes, boundary: bytes = b"b0undary", end: bool = True) -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return body + (b"--" + boundary + b"--\r\n" if end else b"")


IMAGE_PART = (
    b'Content-Disposition: form-data; name="image"; filename="one.png"\r\n'
    b"Content-Type: image/png\r\n\r\n"
)
FORM = "multipart/form-data; boundary=b0undary"
BROKEN_REQUESTS = {
    "multipart without boundary": ("multipart/form-data", multipart(IMAGE_PART + b"x")),
    "multipart not multipart": (FORM, b"this is not a multipart body"),
    "multipart cut short": (FORM, multipart(IMAGE_PART + drawn_ones()[:50], end=False)),
    "multipart other boundary": (FORM, multipart(IMAGE_PART + b"x", boundary=b"other")),
    "multipart header garbage": (FORM, multipart(b"\x00\xff garbage\r\n\r\nx")),
    "multipart image as text": (
        FORM,
        multipart(b'Content-Disposition: form-data; name="image"\r\n\r\n' + b"hello"),
    ),
    "multipart two files": (FORM, multipart(IMAGE_PART + drawn_ones(), IMAGE_PART + b"x")),
    "multipart empty body": (FORM, b""),
    "multipart empty file": (FORM, multipart(IMAGE_PART)),
    "png empty body": ("image/png", b""),
    "form urlencoded": ("application/x-www-form-urlencoded", b"image=abc"),
    "json": ("application/json", b'{"image": "aGVsbG8="}'),
    "text with a png": ("text/plain", drawn_ones()),
    "octet stream": ("application/octet-stream", drawn_ones()),
    "malformed type": (";;; =", drawn_ones()),
    "image without subtype": ("image/", b"x"),
}


@pytest.mark.parametrize(("content_type", "body"), BROKEN_REQUESTS.values(), ids=BROKEN_REQUESTS)
def test_broken_bodies_and_wrong_content_types_are_a_4xx_with_a_reason(client, content_type, body):
    response = client.post(RECOGNIZE, content=body, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500
    assert response.json()["error"]


def png_strategy() -> st.SearchStrategy[bytes]:
    """Bodies for image/png: real small PNGs of random ink, and random bytes."""
    arrays = st.tuples(st.integers(1, 64), st.integers(1, 64), st.integers(0, 2**32 - 1)).map(
        lambda s: np.random.default_rng(s[2]).integers(0, 256, (s[0], s[1]), dtype=np.uint8)
    )
    return st.one_of(arrays.map(png_bytes), st.binary(max_size=512))


schemathesis.openapi.media_type("image/png", png_strategy(), aliases=["image/jpeg"])


def fuzzed_statuses(app, paths: tuple[str, ...] | None = None) -> set[tuple[str, int]]:
    """Send requests that fit the schema and requests that break it, for every operation (or
    those on ``paths``); fail on a 5xx. The (path, status) pairs answered."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    cases = st.one_of(
        operation.ok().as_strategy(mode)
        for operation in schema.get_all_operations()
        if paths is None or operation.ok().path in paths
        for mode in schemathesis.GenerationMode
    )
    statuses = set()

    @given(cases)
    @settings(
        max_examples=50, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    def no_server_error(case) -> None:
        response = case.call()
        statuses.add((case.path, response.status_code))
        assert response.status_code < 500, f"{case.method} {case.path}: {response.text}"

    no_server_error()
    return statuses


HOSTS = ("testserver",)  # the Host header of schemathesis's requests


def test_fuzzed_requests_from_the_openapi_schema_never_get_a_5xx():
    app = create_app(default_recognizer(), ServeSettings(allowed_hosts=HOSTS))
    statuses = fuzzed_statuses(app)
    # The fuzzed bodies reached the reader (refused as images, not as requests from a bad host),
    # and a real image through the same app and host is read.
    assert (RECOGNIZE, 422) in statuses, statuses
    client = TestClient(app, base_url=f"http://{HOSTS[0]}")
    assert client.post(RECOGNIZE, content=drawn_ones(), headers=PNG).status_code == 200


def test_fuzzed_corrections_never_get_a_5xx_where_they_are_collected(tmp_path):
    collecting = ServeSettings(allowed_hosts=HOSTS, collect_dir=str(tmp_path))
    statuses = fuzzed_statuses(create_app(default_recognizer(), collecting), (CORRECTIONS,))
    assert (CORRECTIONS, 422) in statuses, statuses  # reached the reading, not all refused
