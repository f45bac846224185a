"""The job tracker: follows every upstream job to completion, whether or not any client polls.

Each replica runs one tracker loop (or a separate ``seedance-gateway worker`` does). Work is shared through the
``gw:v1:tracker:due`` ZSET: claiming an entry re-scores it to "now + lease", so a job whose replica dies becomes due
again after the lease and another replica takes it over. Upstream status calls per job follow the tracker's own
backoff schedule (reset when the job changes state), so clients polling the gateway never add upstream calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import structlog

from service.budgets.ledger import BudgetLedger
from service.cache.service import CacheService
from service.config import Settings
from service.domain.endpoints import find_endpoint
from service.domain.jobs import Job, JobState, Outcome, poll_delay
from service.errors import UpstreamError
from service.jobs.store import DueSchedule, JobStore
from service.metrics import Metrics
from service.tenants.admission import Admission
from service.upstream.fal import FalClient, UpstreamStatus, is_transient

log = structlog.get_logger(__name__)

CANCELLED_ERROR_TYPES = frozenset({"client_cancelled", "request_cancelled"})


class JobTracker:
    def __init__(  # noqa: PLR0913 - the tracker's collaborators, all explicit
        self,
        *,
        settings: Settings,
        store: JobStore,
        due: DueSchedule,
        fal: FalClient,
        admission: Admission,
        ledger: BudgetLedger,
        cache: CacheService,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._admission = admission
        self._ledger = ledger
        self._cache = cache
        self._s = settings
        self._store = store
        self._due = due
        self._fal = fal
        self._metrics = metrics
        self._clock = clock
        self._inflight: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and process due jobs until ``stop`` is set; survives Redis and upstream outages."""
        log.info("tracker_started")
        while not stop.is_set():
            try:
                claimed = await self.claim_and_start()
            except Exception as exc:
                log.warning("tracker_claim_failed", error=type(exc).__name__)
                claimed = 0
            if not claimed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._s.tracker_tick_seconds)
        await self.drain()
        log.info("tracker_stopped")

    async def claim_and_start(self) -> int:
        """Claim as many due jobs as there are free slots and start processing them. Returns how many."""
        free = self._s.tracker_concurrency - len(self._inflight)
        if free <= 0:
            return 0
        ids = await self._due.claim(
            self._now_ms(),
            lease_ms=int(self._s.tracker_lease_seconds * 1000),
            limit=min(free, self._s.tracker_batch_size),
        )
        for request_id in ids:
            task = asyncio.create_task(self.process(request_id))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(ids)

    async def drain(self) -> None:
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def process(self, request_id: str) -> None:
        """One tracker step for one job. Never raises: failures are logged and the job retried later."""
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self._step(request_id)
            except Exception as exc:
                log.warning("tracker_step_failed", error=type(exc).__name__)
                # The claim's lease brings the job back if this reschedule fails too.
                await self._reschedule_quietly(request_id, self._s.tracker_poll_max_seconds)

    async def _step(self, request_id: str) -> None:
        job = await self._store.get(request_id)
        if job is None:
            await self._due.finish(request_id)
            return
        if job.done:
            await self._finished(job)
            return
        if job.leader_id is not None:
            await self._step_follower(job)
            return
        if job.state is JobState.SUBMITTING or job.upstream_id is None:
            await self._check_stalled_submit(job)
            return
        endpoint = find_endpoint(job.endpoint_id)
        if endpoint is None:  # pragma: no cover - records are only created for known endpoints
            await self._complete_error(job, 500, "Unknown endpoint in job record", "internal_error")
            return
        try:
            status = await self._fal.status(endpoint, job.upstream_id)
        except UpstreamError as exc:
            await self._on_poll_error(job, exc)
            return
        self._metrics.tracker_polls.labels(outcome=status.status).inc()
        if status.status == JobState.COMPLETED:
            await self._finish(job, status)
        else:
            await self._progress(job, status)

    async def _step_follower(self, job: Job) -> None:
        """Followers make no upstream calls: they finish with their leader (normally at once, when the leader
        finishes; this is the backstop), or fail if their leader never came to exist."""
        leader = await self._store.get(job.leader_id) if job.leader_id else None
        if leader is not None and leader.done:
            await self._cache.complete_follower(job, leader)
            await self._due.finish(job.request_id)
            return
        if leader is None and self._clock() - job.created_at > self._s.submit_grace_seconds:
            await self._complete_error(
                job,
                502,
                "The identical request this one was merged with was lost before it reached fal; nothing was charged",
                "upstream_submit_unknown",
            )
            return
        await self._reschedule(job.request_id, self._s.tracker_poll_max_seconds)

    async def _progress(self, job: Job, status: UpstreamStatus) -> None:
        state = JobState(status.status)
        polls = 0 if state is not job.state else job.polls + 1
        values: dict[str, object] = {"state": state, "polls": polls, "queue_position": status.queue_position}
        if status.logs:
            values["logs"] = status.logs
        if state is JobState.IN_PROGRESS and job.started_at is None:
            values["started_at"] = self._clock()
        await self._store.update(job.request_id, **values)
        await self._admission.renew(job.tenant_id, job.request_id)
        await self._reschedule(job.request_id, self._delay(polls))

    async def _finish(self, job: Job, status: UpstreamStatus) -> None:
        endpoint = find_endpoint(job.endpoint_id)
        assert endpoint is not None
        assert job.upstream_id is not None
        try:
            result = await self._fal.result(endpoint, job.upstream_id)
        except UpstreamError as exc:
            await self._on_poll_error(job, exc)
            return
        values: dict[str, Any] = {
            "completed_at": self._clock(),
            "inference_time": status.inference_time,
            "logs": status.logs or job.logs,
            "queue_position": None,
        }
        if result.ok:
            values |= {"outcome": Outcome.OK, "result": result.body}
        else:
            error_type = status.error_type or result.error_type or _error_type_for(result.status_code)
            values |= {
                "outcome": Outcome.CANCELLED if error_type in CANCELLED_ERROR_TYPES else Outcome.ERROR,
                "error": status.error or f"Invalid status code: {result.status_code}",
                "error_type": error_type,
                "error_status": result.status_code,
                "error_body": result.body,
            }
        final = replace(job, state=JobState.COMPLETED, **values)
        # Book the money and publish the result to the cache and to followers before the job shows COMPLETED, so
        # whoever sees it completed also sees it charged and cached. All idempotent: a crash in between makes the
        # next replica repeat them harmlessly.
        await self._ledger.finish(final)
        await self._cache.finish(final)
        completed = await self._store.complete(job.request_id, **values)
        await self._finished(job)
        if completed:
            outcome: Outcome = values["outcome"]
            self._metrics.jobs_completed.labels(endpoint=job.endpoint_id, outcome=outcome.value).inc()
            log.info("job_completed", outcome=outcome.value, tenant_id=job.tenant_id)

    async def _on_poll_error(self, job: Job, exc: UpstreamError) -> None:
        self._metrics.tracker_polls.labels(outcome="error").inc()
        if is_transient(exc):
            log.info("tracker_poll_retry", error_type=exc.error_type, status=exc.status_code)
            await self._reschedule(job.request_id, self._delay(job.polls + 1))
            await self._store.update(job.request_id, polls=job.polls + 1)
            return
        # fal answered definitively that it does not know the request (e.g. 404): it is lost upstream.
        await self._complete_error(
            job, 502, f"fal no longer knows this request (HTTP {exc.status_code})", "upstream_request_lost"
        )

    async def _check_stalled_submit(self, job: Job) -> None:
        """A job still SUBMITTING after the submit timeout plus a lease belongs to a replica that died mid-submit.

        fal may or may not have accepted it and has no idempotency key, so it is failed, never re-submitted.
        """
        deadline = job.created_at + self._s.submit_grace_seconds
        if self._clock() < deadline:
            await self._due.schedule(job.request_id, int(deadline * 1000))
            return
        await self._complete_error(
            job,
            502,
            "The gateway stopped while submitting this request; it was not re-submitted, to avoid paying twice",
            "upstream_submit_unknown",
        )

    async def _complete_error(self, job: Job, status_code: int, message: str, error_type: str) -> None:
        failure: dict[str, Any] = {
            "outcome": Outcome.ERROR,
            "error": message,
            "error_type": error_type,
            "error_status": status_code,
            "error_body": {"detail": message, "error_type": error_type},
        }
        await self._ledger.release(job.tenant_id, job.request_id)  # fal bills nothing it did not produce
        await self._cache.finish(replace(job, state=JobState.COMPLETED, **failure))
        completed = await self._store.complete(job.request_id, completed_at=self._clock(), **failure)
        await self._finished(job)
        if completed:
            self._metrics.jobs_completed.labels(endpoint=job.endpoint_id, outcome=Outcome.ERROR.value).inc()
            log.warning("job_failed", error_type=error_type, tenant_id=job.tenant_id)

    async def _finished(self, job: Job) -> None:
        """A finished job leaves the schedule, frees its concurrency slot, and is settled (success) or has its
        reservation released (failure, cancellation). All idempotent, so a replica that takes over repeats them."""
        await self._due.finish(job.request_id)
        await self._admission.release(job.tenant_id, job.request_id)
        if job.done:  # a job completed by an earlier (possibly interrupted) step: make sure it is booked
            await self._ledger.finish(job)
            await self._cache.finish(job)

    def _delay(self, polls: int) -> float:
        return poll_delay(
            polls,
            initial=self._s.tracker_poll_initial_seconds,
            backoff=self._s.tracker_poll_backoff,
            maximum=self._s.tracker_poll_max_seconds,
        )

    async def _reschedule(self, request_id: str, delay: float) -> None:
        await self._due.schedule(request_id, int((self._clock() + delay) * 1000))

    async def _reschedule_quietly(self, request_id: str, delay: float) -> None:
        try:
            await self._reschedule(request_id, delay)
        except Exception as exc:
            log.warning("tracker_reschedule_failed", error=type(exc).__name__)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _error_type_for(status_code: int) -> str:
    return {422: "validation_error", 499: "client_cancelled", 504: "request_timeout"}.get(
        status_code, "runner_server_error"
    )
