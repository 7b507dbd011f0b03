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
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> Any:
        """``function(*args)`` in a worker thread, once one of the ``concurrent`` slots is free;
        ``ClientDisconnect`` instead if ``gone()`` then says the client has left (nobody waits
        for the answer: a read would only delay those still waiting)."""
        async with self.limiter:
            if gone is not None and await gone():
                raise ClientDisconnect
            return await anyio.to_thread.run_sync(function, *args)
