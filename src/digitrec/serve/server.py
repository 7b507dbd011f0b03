"""The service on uvicorn, with bounds on what one connection may hold.

uvicorn's default HTTP parser (httptools) takes request headers of any size, and no uvicorn
parser bounds the time a request's headers take to arrive: a client could hold memory or a
connection for ever. Here requests are parsed by h11 with a cap on the size of the request line
and headers (``ServerOptions.max_header_bytes``, h11's ``max_incomplete_event_size``), and a
connection is closed when it stays idle, or takes to send a request's line and headers, longer
than ``ServerOptions.timeout`` (uvicorn's keep-alive timeout). The answers the server gives on its
own, outside the app (400 to a request h11 cannot parse), carry the app's security headers, and
since the service has no WebSocket endpoints, an upgrade request is answered by the app as plain
HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from digitrec.serve.middleware import PAGE_HEADERS
from digitrec.serve.schemas import error_response

# h11 checks the size of an unfinished request head only between the data it is given: a head
# is fed to it in pieces this long, so that the limit holds (to within a piece) whatever the size
# of a socket read (up to 256 KB).
HEAD_PIECE = 1024
NOT_HTTP = "the request is not valid HTTP/1.1, or its line and headers are over the size limit"


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol that holds a request's line and headers to the size limit, and
    closes a connection whose next request's line and headers have not all arrived within the
    keep-alive timeout (counted from the connection's start, or from the first byte of a later
    request); its own 400s carry the app's security headers, and it never upgrades."""

    header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.start_header_timer()

    def data_received(self, data: bytes) -> None:
        for piece in self.pieces(data):
            if self.transport.is_closing():  # refused (400): the rest is not read
                return
            super().data_received(piece)
        if self.conn.their_state is h11.IDLE:  # a request has begun but its headers are not in
            self.start_header_timer()
        else:
            self.stop_header_timer()

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """``data`` in ``HEAD_PIECE`` pieces while they may be a request's head, then the rest."""
        start = 0
        while self.conn.their_state is h11.IDLE and len(data) - start > HEAD_PIECE:
            yield data[start : start + HEAD_PIECE]
            start += HEAD_PIECE
        if start < len(data):
            yield data[start:]

    def send_400_response(self, msg: str) -> None:
        """Answer a request h11 cannot parse as the app answers errors: JSON, with its security
        headers; then close the connection."""
        response = error_response(400, NOT_HTTP, {**PAGE_HEADERS, "Connection": "close"})
        head = h11.Response(status_code=400, headers=response.raw_headers, reason=b"Bad Request")
        for event in (head, h11.Data(data=response.body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    def _should_upgrade(self) -> bool:
        """Never switch to WebSocket (the service has none; uvicorn's ws is "none" too): the
        app answers an upgrade request as plain HTTP, with its headers, and nothing is logged."""
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_header_timer()
        super().connection_lost(exc)

    def start_header_timer(self) -> None:
        if self.header_timer is None:
            self.header_timer = self.loop.call_later(self.timeout_keep_alive, self.headers_too_slow)

    def stop_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def headers_too_slow(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            self.transport.close()
