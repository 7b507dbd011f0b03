"""How many images one worker reads at once, how many more it lets wait, and how many request
bodies one client may be sending at once.

Each read can take a lot of memory and CPU (an image up to the pixel limit), so a worker runs
only a few at once in threads and keeps a short queue; a request beyond that is refused at once
(503 with ``Retry-After``) instead of piling up behind the others, and ``/readyz`` reports the
worker busy so that a load balancer sends new requests elsewhere. A request takes its place in
that queue only once its body has arrived, so that clients sending bodies slowly hold no place;
what they can hold instead is bounded per client address (``UploadsPerClient``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import ClientDisconnect


class Saturated(Exception):
    """The worker is reading as many images as it may and as many are waiting."""


class ReadCapacity:
    """Admits up to ``concurrent + queued`` requests; runs ``concurrent`` reads at once.

    Used from the event loop only (no lock needed). A request is admitted once its body has
    arrived: the bodies waiting in memory for a read are bounded too.
    """

    def __init__(self, concurrent: int, queued: int) -> None:
        if concurrent < 1 or queued < 0:
            raise ValueError(f"need concurrent >= 1 and queued >= 0, not {concurrent}, {queued}")
        self.limiter = anyio.CapacityLimiter(concurrent)
        self.capacity = concurrent + queued
        self.admitted = 0

    @property
    def saturated(self) -> bool:
        return self.admitted >= self.capacity

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one place for the duration of a request; ``Saturated`` when none is free."""
        if self.saturated:
            raise Saturated
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    async def run(
        self,
        function: Callable[..., Any],
        *args: Any,
        departure: Callable[[], Awaitable[object]],
    ) -> Any:
        """``function(*args)`` in a worker thread, once one of the ``concurrent`` slots is free.
        While it waits, ``departure()`` (returning when the client leaves) is watched: a client
        gone before its turn ends the wait with ``ClientDisconnect``, without a read, and its
        place is free at once for those still waiting."""
        token = object()
        if not await self._slot(token, departure):
            raise ClientDisconnect
        try:
            return await anyio.to_thread.run_sync(function, *args)
        finally:
            self.limiter.release_on_behalf_of(token)

    async def _slot(self, token: object, departure: Callable[[], Awaitable[object]]) -> bool:
        """Wait for a read slot for ``token``: True holding it, False (holding none) if
        ``departure()`` returned first."""
        try:  # a free slot: nothing to wait for, nor to watch
            self.limiter.acquire_on_behalf_of_nowait(token)
            return True
        except anyio.WouldBlock:
            pass
        taken = False
        async with anyio.create_task_group() as group:

            async def take() -> None:
                nonlocal taken
                await self.limiter.acquire_on_behalf_of(token)
                taken = True
                group.cancel_scope.cancel()

            async def watch() -> None:
                await departure()
                group.cancel_scope.cancel()

            group.start_soon(take)
            group.start_soon(watch)
        return taken


class TooManyUploads(Exception):
    """A client is sending as many request bodies at once as one client may."""


class UploadsPerClient:
    """Bounds the request bodies one client address may be sending at once (``limit``): a
    client that sends bodies slowly holds a connection and what has arrived of each body, so
    the most one address may hold is ``limit`` of them, whatever others do.

    Used from the event loop only (no lock needed).
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"need limit >= 1, not {limit}")
        self.limit = limit
        self.arriving: Counter[str] = Counter()

    @contextmanager
    def receiving(self, client: str) -> Iterator[None]:
        """Count one body arriving from ``client`` while it arrives; ``TooManyUploads`` when the
        client already sends ``limit``."""
        if self.arriving[client] >= self.limit:
            raise TooManyUploads(
                f"this client is already sending {self.limit} request bodies, the most one "
                "client may send at once: send the next once one of them has arrived"
            )
        self.arriving[client] += 1
        try:
            yield
        finally:
            self.arriving[client] -= 1
            if not self.arriving[client]:
                del self.arriving[client]
