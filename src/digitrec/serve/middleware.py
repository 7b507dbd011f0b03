"""ASGI middleware of the service: the body limit, the refusal of writes from other sites' pages,
JSON for the framework's plain-text errors, and the security headers of every response."""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digitrec.serve.schemas import error_response
from digitrec.serve.settings import MEGABYTE

# For the drawing page (and harmless on JSON): its own script and style, the 28×28 previews as
# data: URLs, dropped files shown through blob: URLs, fetch to the API; nothing else, no framing.
# The API docs add the hash of their one inline script (``SecurityHeaders``'s ``policies``).
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# What every answer carries (SecurityHeaders), and answers made outside it.
PAGE_HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": PAGE_POLICY}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})  # those that may change something


def too_large_message(limit: int) -> str:
    return f"the request body is over the limit of {limit / MEGABYTE:g} MB"


class HttpMiddleware:
    """ASGI middleware that acts on HTTP requests (``handle``) and passes the rest on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class BodyLimit(HttpMiddleware):
    """Answers 413 for a body over the limit, before or while it streams in.

    A declared Content-Length over the limit is refused without reading anything; a body that
    turns out longer (chunked, or a lying header) is cut off as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, too_large_message(self.max_bytes))(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, too_large_message(self.max_bytes))
            return message

        await self.app(scope, limited_receive, send)


class CrossSiteWrites(HttpMiddleware):
    """Answers 403 to a request that may change something (``UNSAFE_METHODS``) when a browser
    sent it from another site's page, which could otherwise store corrections in its user's
    name (cross-site request forgery).

    The browser says where a request comes from in ``Sec-Fetch-Site``: only ``same-origin``
    (the service's own pages) and ``none`` (the user's own doing) pass. Browsers that do not
    send it are judged by ``Origin``, which must name the host the request was sent to. A
    request with neither header (curl, scripts, the CLI) is not a browser's and passes.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] in UNSAFE_METHODS and (reason := cross_site(Headers(scope=scope))):
            message = (
                f"refused: a {scope['method']} sent by a browser from another site's page "
                f"({reason}); this service takes them only from its own pages"
            )
            await error_response(403, message)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def cross_site(headers: Headers) -> str | None:
    """Why a browser's request comes from another site's page (the header that says so), or
    None if it does not, or no browser sent it."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return None if fetch_site in ("same-origin", "none") else f"Sec-Fetch-Site: {fetch_site}"
    origin = headers.get("origin")
    if origin is None or urlsplit(origin).netloc.lower() == headers.get("host", "").lower():
        return None
    return f"Origin: {origin}, not this service's host"


class JsonErrors(HttpMiddleware):
    """Turns the plain-text error answers of the layers below (Starlette's 400 for a Host
    header that is not allowed) into this API's JSON ``{"error": ...}``."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 0
        text = b""

        async def send_json(message: Message) -> None:
            nonlocal status, text
            if message["type"] == "http.response.start" and is_plain_error(message):
                status = message["status"]
            elif not status:
                await send(message)
            else:
                text += message.get("body", b"")
                if not message.get("more_body", False):
                    reason = text.decode("utf-8", "replace").strip() or HTTPStatus(status).phrase
                    await error_response(status, reason)(scope, receive, send)

        await self.app(scope, receive, send_json)


def is_plain_error(start: Message) -> bool:
    content_type = Headers(raw=start["headers"]).get("content-type", "")
    return start["status"] >= 400 and content_type.startswith("text/plain")


class SecurityHeaders(HttpMiddleware):
    """Adds ``SECURITY_HEADERS`` to every response, and a Content Security Policy: the one
    ``policies`` gives for its path (the API docs'), else ``PAGE_POLICY``."""

    def __init__(self, app: ASGIApp, policies: dict[str, str]) -> None:
        super().__init__(app)
        self.policies = policies

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy = self.policies.get(scope["path"], PAGE_POLICY)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update(SECURITY_HEADERS)
                headers["Content-Security-Policy"] = policy
            await send(message)

        await self.app(scope, receive, send_with_headers)
