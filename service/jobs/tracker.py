"""The job tracker: follows every upstream job to completion, whether or not any client polls.

Each replica runs one tracker loop (or a separate ``seedance-gateway worker`` does). Work is shared through the
``gw:v1:tracker:due`` ZSET: claiming an entry re-scores it to "now + lease", so a job whose replica dies becomes due
again after the lease and another replica takes it over; a replica that shuts down hands the jobs it was still
stepping back at once instead (:meth:`JobTracker.hand_back`). Upstream status calls per job follow the tracker's own
backoff schedule (reset when the job changes state), so clients polling the gateway never add upstream calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

from service.background import Survivor
from service.config import Settings
from service.domain.endpoints import find_endpoint
from service.domain.jobs import Job, JobState, Outcome, failed_fields, poll_delay
from service.errors import UpstreamError
from service.jobs.completion import Completion
from service.jobs.followers import outcome_of
from service.jobs.recording import UpstreamRecorder
from service.jobs.store import DueSchedule, JobStore
from service.metrics import Metrics
from service.schedule import Handover, LeaseWorker
from service.tenants.admission import Admission
from service.upstream.fal import FalClient, UpstreamStatus, is_transient
from service.upstream.sandbox import upstream_for

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
        completion: Completion,
        metrics: Metrics,
        recorder: UpstreamRecorder | None = None,
        clock: Callable[[], float] = time.time,
        sandbox_fal: FalClient | None = None,
    ) -> None:
        self._recorder = recorder
        self._sandbox_fal = sandbox_fal  # a sandbox job's (``job.sandbox``) upstream
        self._admission = admission
        self._completion = completion
        self._s = settings
        self._store = store
        self._due = due
        self._fal = fal
        self._metrics = metrics
        self._clock = clock
        self._survivor = Survivor("tracker", metrics)
        self._loop = LeaseWorker(
            due,
            self.process,
            concurrency=settings.tracker_concurrency,
            batch=settings.tracker_batch_size,
            lease_seconds=settings.tracker_lease_seconds,
            tick_seconds=settings.tracker_tick_seconds,
            on_error=self._survivor.survived,
            observe_lag=metrics.tracker_lag.observe,
            grace_seconds=settings.tracker_shutdown_grace_seconds,
            clock=clock,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and process due jobs until ``stop`` is set; survives Redis and upstream outages."""
        log.info("tracker_started")
        await self._loop.run(stop)
        log.info("tracker_stopped")

    async def claim_and_start(self) -> int:
        """Claim as many due jobs as there are free slots and start processing them. Returns how many."""
        return await self._loop.claim_and_start()

    async def drain(self) -> None:
        await self._loop.drain()

    async def hand_back(self) -> Handover:
        """After :meth:`run`: give the jobs whose step the stop cut short back, due now, for another replica to take
        at once (see ``LeaseWorker.hand_back``). A step cut short is like one whose replica died: every write it made
        is atomic, and a completion it began is resumed by whoever takes the job."""
        return await self._loop.hand_back()

    async def process(self, request_id: str) -> None:
        """One tracker step for one job. Never raises: failures are logged and the job retried later."""
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self._step(request_id)
            except Exception:  # noqa: BLE001 - one job's failure must not stop the others; logged and counted
                self._survivor.survived("tracker_step_failed")
                # The claim's lease brings the job back if this reschedule fails too.
                await self._reschedule_quietly(request_id, self._s.tracker_poll_max_seconds)

    async def _step(self, request_id: str) -> None:
        job = await self._store.get(request_id)
        if job is None:
            await self._due.finish(request_id)
            return
        if job.done:  # completed by a step that may have been interrupted: finish its side effects
            await self._completion.resume(job)
            return
        if job.leader_id is not None:
            await self._step_follower(job)
            return
        if job.state is JobState.SUBMITTING or job.upstream_id is None:
            await self._check_stalled_submit(job)
            return
        endpoint = find_endpoint(job.endpoint_id)
        if endpoint is None:  # pragma: no cover - records are only created for known endpoints
            await self._fail(job, 500, "Unknown endpoint in job record", "internal_error")
            return
        try:
            status = await upstream_for(job.sandbox, self._fal, self._sandbox_fal).status(endpoint, job.upstream_id)
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
            await self._completion.complete(job, **outcome_of(leader))
            return
        if leader is None and self._clock() - job.created_at > self._s.submit_grace_seconds:
            await self._fail(
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
        values: dict[str, Any] = {"state": state, "polls": polls, "queue_position": status.queue_position}
        if status.logs:
            values["logs"] = status.logs
        if state is JobState.IN_PROGRESS and job.started_at is None:
            values["started_at"] = self._clock()
        await self._store.update(job.request_id, **values)
        async with self._store.pipeline() as pipe:  # the slot's renewal and the next poll: one round trip
            self._admission.renew_in(pipe, job.tenant_id, job.request_id)
            self._due.schedule_in(pipe, job.request_id, int((self._clock() + self._delay(job, polls, state)) * 1000))
            await pipe.execute()

    async def _finish(self, job: Job, status: UpstreamStatus) -> None:
        endpoint = find_endpoint(job.endpoint_id)
        assert endpoint is not None
        assert job.upstream_id is not None
        try:
            result = await upstream_for(job.sandbox, self._fal, self._sandbox_fal).result(endpoint, job.upstream_id)
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
                "error_timeout_type": result.timeout_type,
            }
        await self._completion.complete(job, **values)

    async def _on_poll_error(self, job: Job, exc: UpstreamError) -> None:
        self._metrics.tracker_polls.labels(outcome="error").inc()
        if is_transient(exc):
            log.info("tracker_poll_retry", error_type=exc.error_type, status=exc.status_code)
            await self._reschedule(job.request_id, self._delay(job, job.polls + 1, job.state))
            await self._store.update(job.request_id, polls=job.polls + 1)
            return
        # fal answered definitively that it does not know the request (e.g. 404): it is lost upstream.
        await self._fail(
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
        if self._recorder is not None and await self._recorder.write_now(job.request_id):
            # fal accepted it while Redis was away, and this process kept its id: track it instead of failing it.
            await self._reschedule(job.request_id, 0)
            return
        # Only while fal's id is still unknown: one written since this step read the record (the recorder's
        # background write) means fal has the job, and it is tracked like any other.
        failed = await self._fail(
            job,
            502,
            "The gateway stopped while submitting this request; it was not re-submitted, to avoid paying twice",
            "upstream_submit_unknown",
            unless_submitted=True,
        )
        if not failed:
            await self._reschedule(job.request_id, 0)

    async def _fail(
        self, job: Job, status_code: int, message: str, error_type: str, *, unless_submitted: bool = False
    ) -> bool:
        """End a job the gateway gives up on; fal bills nothing it did not produce, so nothing is charged. False if
        it was not ended here (already completed, or ``unless_submitted`` and fal's id has been recorded)."""
        values = failed_fields(status_code, message, error_type)
        if not await self._completion.complete(job, unless_submitted=unless_submitted, **values):
            return False
        log.warning("job_failed", error_type=error_type, tenant_id=job.tenant_id)
        return True

    def _delay(self, job: Job, polls: int, state: JobState) -> float:
        """The backoff schedule; for a job fal will call back about, polling is only the fallback. A job that sits
        in fal's queue backs off further (its queue position is all that changes) than one being generated."""
        if job.upstream_webhook:
            return self._s.fal_webhook_poll_seconds
        queued = state is JobState.IN_QUEUE
        return poll_delay(
            polls,
            initial=self._s.tracker_poll_initial_seconds,
            backoff=self._s.tracker_poll_backoff,
            maximum=self._s.tracker_poll_queued_max_seconds if queued else self._s.tracker_poll_max_seconds,
        )

    async def _reschedule(self, request_id: str, delay: float) -> None:
        await self._due.schedule(request_id, int((self._clock() + delay) * 1000))

    async def _reschedule_quietly(self, request_id: str, delay: float) -> None:
        try:
            await self._reschedule(request_id, delay)
        except Exception:  # noqa: BLE001 - the claim's lease is the backstop; logged and counted
            self._survivor.survived("tracker_reschedule_failed")

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _error_type_for(status_code: int) -> str:
    return {422: "validation_error", 499: "client_cancelled", 504: "request_timeout"}.get(
        status_code, "runner_server_error"
    )
