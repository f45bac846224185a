"""Cross-replica job-change notifications: Redis pub/sub fanned out to local waiters.

Every write to a job record publishes its request id (inside the same Lua script as the write; with sharded pub/sub
on a cluster, right after it, on the channel of the id's shard). The process's event
bus wakes the local waiters of that id: ``/run`` callers and status streams. Pub/sub is at-most-once, so waiters
also re-read the record on a fallback interval; a lost message costs latency, never correctness.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress

from service.domain.jobs import Job
from service.events import EventBus, JobChannels
from service.jobs.store import JobStore


class JobEvents:
    """Wakes local waiters of a request id when its job record changes (on any replica)."""

    def __init__(self, bus: EventBus, channels: JobChannels | None = None) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        for channel in (channels or JobChannels()).names:
            bus.on(channel, self.notify)
        bus.on_reset(self.wake_all)  # anything may have changed while unsubscribed: make every waiter re-read

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

    def wake_all(self) -> None:
        """Make every local waiter re-read its job (after a lost subscription, or when the shutdown begins)."""
        for waiters in list(self._waiters.values()):
            for event in waiters:
                event.set()


async def watch_job(
    store: JobStore, events: JobEvents, request_id: str, *, fallback_seconds: float
) -> AsyncIterator[Job | None]:
    """Yield the job record now and after every change, ending once it is COMPLETED and shown (no longer
    ``settling``), or if the record is gone.

    The event is cleared *before* each read, so a change that lands between the read and the wait still wakes us.
    """
    with events.listen(request_id) as changed:
        while True:
            changed.clear()
            job = await store.get(request_id)
            yield job
            if job is None or (job.done and not job.settling):
                return
            with suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), fallback_seconds)
