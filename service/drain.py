"""The process's shutdown has begun: the moment long waits learn to end and background work to hand itself over.

uvicorn answers SIGTERM by closing its listener and waiting up to its graceful window for the connections still
open; only then does the app's lifespan shut down. So the shutdown is announced here, first: ``service/server.py``
begins the app's drain as uvicorn's shutdown starts (and the lifespan does, for any other server). From then on the
background loops stop and give their leases back, ``/run`` waits hand their clients over, and status streams follow
their jobs for a last grace period (docs/protocol.md §15).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Drain:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._began_at: float | None = None
        self._began = asyncio.Event()
        self._callbacks: list[tuple[Callable[[], None], float]] = []

    def on_begin(self, callback: Callable[[], None], *, after: float = 0.0) -> None:
        """Call ``callback`` when the drain begins, or ``after`` seconds later."""
        self._callbacks.append((callback, after))

    def begin(self) -> None:
        """Announce the shutdown (once; later calls do nothing). Must run in the app's event loop."""
        if self._began_at is not None:
            return
        self._began_at = self._clock()
        self._began.set()
        loop = asyncio.get_running_loop()
        for callback, after in self._callbacks:
            if after > 0:
                loop.call_later(after, callback)
            else:
                callback()

    def begun(self) -> bool:
        return self._began_at is not None

    def lasted(self, seconds: float) -> bool:
        """True once the drain has gone on for ``seconds``."""
        return self._began_at is not None and self._clock() - self._began_at >= seconds

    async def wait(self) -> None:
        await self._began.wait()
