"""Reading jobs as their clients see them: one record, its changes as they happen, and waiting for the end."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from service.domain.endpoints import app_of
from service.domain.jobs import Job, JobState, as_clients_see, cancelled_fields
from service.errors import NotFound
from service.jobs.events import JobEvents, watch_job
from service.jobs.followers import merged
from service.jobs.store import JobStore
from service.tenants.auth import Principal


class JobQueries:
    def __init__(self, store: JobStore, events: JobEvents, *, fallback_seconds: float) -> None:
        self._store = store
        self._events = events
        self._fallback = fallback_seconds

    async def get(self, principal: Principal, app: str, request_id: str) -> Job:
        """The tenant's own job as its client sees it. Another tenant's id (or a deleted namesake's) is
        indistinguishable from an unknown one."""
        job = await self._store.get(request_id) if _plausible_id(request_id) else None
        if (
            job is None
            or job.tenant_id != principal.tenant_id
            or (job.tenant_uid is not None and job.tenant_uid != principal.tenant.uid)
            or app_of(job.endpoint_id) != app
        ):
            raise NotFound("Request not found", error_type="request_not_found")
        return await self.view(job)

    async def view(self, job: Job) -> Job:
        """A follower shows its leader's progress; a detached leader shows the cancellation its client asked for; a
        job whose completion is still being booked shows as running."""
        if job.detached:
            return replace(job, state=JobState.COMPLETED, result=None, **cancelled_fields())
        if job.leader_id is not None and not job.done:
            return merged(job, await self._seen(job.leader_id))
        return as_clients_see(job)

    async def _seen(self, request_id: str) -> Job | None:
        job = await self._store.get(request_id)
        return as_clients_see(job) if job is not None else None

    async def watch(self, request_id: str) -> AsyncIterator[Job | None]:
        """The job as its client sees it, now and after every change, until COMPLETED."""
        first = await self._store.get(request_id)
        follows = first.leader_id if first is not None and not first.done and not first.detached else None
        async for record in watch_job(
            self._store, self._events, follows or request_id, fallback_seconds=self._fallback
        ):
            if record is None or first is None:
                yield record
                continue
            seen = as_clients_see(record)
            if follows:
                mine = await self._store.get(request_id)
                yield await self.view(mine) if mine is not None and mine.done else merged(first, seen)
            else:
                yield await self.view(seen)
            if (follows and seen.done) or (not follows and seen.detached):
                return

    async def wait_done(
        self,
        request_id: str,
        *,
        timeout: float,  # noqa: ASYNC109 - a deadline
        until: Callable[[], bool] | None = None,
    ) -> Job | None:
        """Wait for the job to complete; the last record seen (not done) if ``timeout`` runs out first, or as soon
        as ``until()`` holds when the job is (re-)read: whoever makes it hold wakes the waiters
        (``JobEvents.wake_all``)."""
        deadline = time.monotonic() + timeout
        last: Job | None = None
        watcher = self.watch(request_id)
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    last = await asyncio.wait_for(anext(watcher), remaining)
                except (StopAsyncIteration, TimeoutError):
                    break
                if last is None or last.done or (until is not None and until()):
                    break
        finally:
            await watcher.aclose()  # type: ignore[attr-defined]
        return last


def _plausible_id(request_id: str) -> bool:
    try:
        uuid.UUID(request_id)
    except ValueError:
        return False
    return True
