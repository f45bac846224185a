"""Cancelling a job (``PUT .../requests/{id}/cancel``) without ever cancelling someone else's shared upstream job."""

from __future__ import annotations

import time
from collections.abc import Callable

from service.domain.endpoints import find_endpoint
from service.domain.jobs import cancelled_fields
from service.jobs.completion import Completion
from service.jobs.followers import Followers
from service.jobs.queries import JobQueries
from service.jobs.store import DueSchedule, JobStore
from service.tenants.auth import Principal
from service.upstream.fal import FalClient
from service.upstream.sandbox import upstream_for


class Cancellation:
    def __init__(  # noqa: PLR0913 - collaborators, all explicit
        self,
        *,
        queries: JobQueries,
        store: JobStore,
        due: DueSchedule,
        fal: FalClient,
        followers: Followers,
        completion: Completion,
        clock: Callable[[], float] = time.time,
        sandbox_fal: FalClient | None = None,
    ) -> None:
        self._queries = queries
        self._sandbox_fal = sandbox_fal
        self._store = store
        self._due = due
        self._fal = fal
        self._followers = followers
        self._completion = completion
        self._clock = clock

    async def cancel(self, principal: Principal, app: str, request_id: str) -> bool:
        """True when cancellation was requested, False when the job had already completed.

        Requests sharing one upstream job never cancel each other: a follower is completed as cancelled on its own,
        and a leader with live followers is detached while the job runs on for them (the leader still pays for it).
        Otherwise fal is asked to cancel and the tracker completes the job with fal's answer."""
        job = await self._queries.get(principal, app, request_id)
        if job.done:
            return False
        if job.leader_id is not None:
            await self._completion.complete(job, **cancelled_fields())
            return True
        if await self._followers.any_live(job):
            return await self._store.update(request_id, detached=True)
        if job.upstream_id is None:
            # Submit still in flight: the submitter sees the flag and cancels upstream as soon as it has an id.
            return await self._store.update(request_id, cancel_requested=True)
        endpoint = find_endpoint(job.endpoint_id)
        assert endpoint is not None  # records are only created for known endpoints
        if not await upstream_for(job.sandbox, self._fal, self._sandbox_fal).cancel(endpoint, job.upstream_id):
            await self._poll_now(request_id)  # fal finished first: fetch it now
            return False
        await self._store.update(request_id, cancel_requested=True)
        await self._poll_now(request_id)
        return True

    async def _poll_now(self, request_id: str) -> None:
        await self._due.schedule(request_id, int(self._clock() * 1000))
