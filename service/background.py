"""How a background loop (tracker, webhook deliveries, reconciler, event bus) survives an error: it counts every one
in ``gateway_background_errors_total{loop}`` and logs it with its traceback, the first of each kind at once and
then at most once per interval, so an outage of minutes is a handful of log lines rather than thousands."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable

import structlog

from service.metrics import Metrics

log = structlog.get_logger(__name__)
LOG_INTERVAL_SECONDS = 60.0
RECANCEL_SECONDS = 0.1


async def cancel_and_wait(task: asyncio.Task[None], *, timeout: float) -> bool:  # noqa: ASYNC109 - a bound on shutdown
    """Cancel ``task`` and wait up to ``timeout`` for it to end, cancelling it again while it runs on: a cancellation
    can be lost inside a client library's call (seen with redis-py starting cluster pub/sub connections), and one
    lost there must not hang a shutdown. Returns whether the task ended."""
    deadline = time.monotonic() + timeout
    while not task.done() and time.monotonic() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=min(RECANCEL_SECONDS, max(0.0, deadline - time.monotonic())))
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: an error it ended with was already counted by its loop
    return task.done()


class Survivor:
    def __init__(
        self,
        loop: str,
        metrics: Metrics,
        *,
        interval: float = LOG_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loop = loop
        self._counter = metrics.background_errors.labels(loop=loop)
        self._interval = interval
        self._clock = clock
        self._last_logged: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def survived(self, event: str) -> None:
        """Call inside ``except``: count the error being handled, and log it unless one like it was just logged."""
        error = sys.exc_info()[1]
        kind = (event, type(error).__name__)
        self._counter.inc()
        now = self._clock()
        last = self._last_logged.get(kind)
        if last is not None and now - last < self._interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last_logged[kind] = now
        log.error(event, loop=self._loop, suppressed_since_last=self._suppressed.pop(kind, 0), exc_info=error)
