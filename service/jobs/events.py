"""Cross-replica job-change notifications: Redis pub/sub fanned out to local waiters.

Every write to a job record publishes its request id (inside the same Lua script as the write). One subscriber per
process wakes the local waiters of that id: ``/run`` callers and status streams. Pub/sub is at-most-once, so
waiters also re-read the record on a fallback interval; a lost message costs latency, never correctness.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress

import structlog
from redis.asyncio import Redis

from service import keys
from service.domain.jobs import Job
from service.jobs.store import JobStore

log = structlog.get_logger(__name__)


class JobEvents:
    def __init__(self, redis: Redis, *, reconnect_seconds: float = 1.0) -> None:
        self._redis = redis
        self._reconnect = reconnect_seconds
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    async def run(self) -> None:
        """Subscribe and dispatch until cancelled, reconnecting after Redis errors."""
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(keys.job_events_channel())
                    self._wake_all()  # anything published while we were away: make waiters re-read
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.notify(str(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("job_events_disconnected", error=type(exc).__name__)
                self._wake_all()
                await asyncio.sleep(self._reconnect)

    def notify(self, request_id: str) -> None:
        for event in self._waiters.get(request_id, ()):
            event.set()

    @contextmanager
    def listen(self, request_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters[request_id].add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(request_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[request_id]

    def _wake_all(self) -> None:
        for waiters in list(self._waiters.values()):
            for event in waiters:
                event.set()


async def watch_job(
    store: JobStore, events: JobEvents, request_id: str, *, fallback_seconds: float
) -> AsyncIterator[Job | None]:
    """Yield the job record now and after every change, ending after COMPLETED (or if the record is gone).

    The event is cleared *before* each read, so a change that lands between the read and the wait still wakes us.
    """
    with events.listen(request_id) as changed:
        while True:
            changed.clear()
            job = await store.get(request_id)
            yield job
            if job is None or job.done:
                return
            with suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), fallback_seconds)
