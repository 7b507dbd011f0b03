"""The service on uvicorn, with bounds on what one connection may hold.

uvicorn's default HTTP parser (httptools) takes request headers of any size, and no uvicorn
parser bounds the time a request's headers take to arrive: a client could hold memory or a
connection for ever. Here requests are parsed by h11 with a cap on the size of the request line
and headers (``ServerOptions.max_header_bytes``, h11's ``max_incomplete_event_size``), and a
connection is closed when it stays idle, or takes to send a request's line and headers, longer
than ``ServerOptions.timeout`` (uvicorn's keep-alive timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# h11 checks the size of an unfinished request head only between the data it is given: a head
# is fed to it in pieces this long, so that the limit holds (to within a piece) whatever the size
# of a socket read (up to 256 KB).
HEAD_PIECE = 1024


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol that holds a request's line and headers to the size limit, and
    closes a connection whose next request's line and headers have not all arrived within the
    keep-alive timeout (counted from the connection's start, or from the first byte of a later
    request)."""

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
