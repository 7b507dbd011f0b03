"""How many images one worker reads at once, and how many more it lets wait.

Each read can take a lot of memory and CPU (an image up to the pixel limit), so a worker runs
only a few at once in threads and keeps a short queue; a request beyond that is refused at once
(503 with ``Retry-After``) instead of piling up behind the others, and ``/readyz`` reports the
worker busy so that a load balancer sends new requests elsewhere.
"""

from __future__ import annotations

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

    Used from the event loop only (no lock needed): a request is admitted before its body is
    read, so that the bodies held in memory are bounded too.
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
