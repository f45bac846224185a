"""The submit pipeline: cache or single-flight answer, else admit -> record -> submit upstream -> record the id.

Errors that prove fal never accepted the job are raised to the client, and the job ends through the completion
path, which gives back everything admission took. Once fal may have accepted a job it is never re-submitted.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from redis.exceptions import NoScriptError, RedisError

from service import timing
from service.budgets.ledger import BudgetLedger
from service.budgets.usage import BudgetReader, tenant_period
from service.cache.service import CacheDirective, CacheService
from service.config import Settings
from service.domain.endpoints import Endpoint
from service.domain.jobs import Job, JobMode, JobState, failed_fields
from service.domain.schemas import TextToVideoInput, normalized_input
from service.errors import BudgetExceeded, Conflict, TooManyRequests, UpstreamError, UpstreamTimeout
from service.jobs.cache_answers import CacheAnswers
from service.jobs.completion import Completion
from service.jobs.fal_webhooks import fal_webhooks_on, receiver_url
from service.jobs.followers import Followers
from service.jobs.idempotency import Duplicate, IdempotencyKeys
from service.jobs.recording import Accepted, AcceptedNotRecorded, UpstreamRecorder
from service.jobs.responses import NOT_RETRIED
from service.jobs.store import DueSchedule, JobStore, ScheduleAndRead
from service.metrics import Metrics
from service.tenants.admission import Admission, Reservation
from service.tenants.auth import Principal
from service.upstream.fal import FalClient, RequestNotSent
from service.upstream.sandbox import upstream_for

log = structlog.get_logger(__name__)
SUBMIT_UNKNOWN = "fal did not confirm the submission in time; it was not retried, to avoid paying twice"
NOT_SUBMITTED = "The gateway could not record this request, so it was not sent to fal; nothing was charged"
INTERRUPTED = (
    "The gateway was interrupted while submitting this request; it was not re-submitted, to avoid paying twice"
)


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    """One validated submit as the client sent it: what to run, how to answer, and what to forward to fal."""

    endpoint: Endpoint
    data: TextToVideoInput
    mode: JobMode
    webhook_url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    cache: CacheDirective = CacheDirective.DEFAULT
    idempotency_key: str | None = None


class SubmitPipeline:
    def __init__(  # noqa: PLR0913 - the pipeline's collaborators, all explicit
        self,
        *,
        settings: Settings,
        store: JobStore,
        due: DueSchedule,
        fal: FalClient,
        admission: Admission,
        ledger: BudgetLedger,
        budgets: BudgetReader,
        cache: CacheService,
        followers: Followers,
        completion: Completion,
        recorder: UpstreamRecorder,
        idempotency: IdempotencyKeys,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        sandbox_fal: FalClient | None = None,
    ) -> None:
        self._s = settings
        self._sandbox_fal = sandbox_fal
        self._recorder = recorder
        self._idempotency = idempotency
        self._answers = CacheAnswers(
            settings=settings,
            store=store,
            due=due,
            cache=cache,
            followers=followers,
            completion=completion,
            metrics=metrics,
            clock=clock,
        )
        self._store = store
        self._due = due
        self._fal = fal
        self._admission = admission
        self._ledger = ledger
        self._budgets = budgets
        self._cache = cache
        self._followers = followers
        self._completion = completion
        self._metrics = metrics
        self._clock = clock

    async def submit(self, principal: Principal, request: SubmitRequest) -> Job:
        """Answer from the cache (or attach to an identical request in flight) when possible; otherwise admit (rate,
        concurrency and budget at once), record, then submit upstream."""
        timing.note(endpoint_id=request.endpoint.id)
        job = await self._submit(principal, request)
        timing.note(cache=job.cache_role, cost_micros=job.estimate_micros)
        return job

    async def _submit(self, principal: Principal, request: SubmitRequest) -> Job:
        quote = self._ledger.estimate(request.data)
        job = Job(
            request_id=str(uuid.uuid4()),
            tenant_id=principal.tenant_id,
            endpoint_id=request.endpoint.id,
            mode=request.mode,
            input=normalized_input(request.data),
            created_at=self._clock(),
            webhook_url=request.webhook_url,
            tenant_uid=principal.tenant.uid,
            sandbox=principal.tenant.sandbox,
            estimate_micros=quote.cost_micros,
            upstream_webhook=fal_webhooks_on(self._s) and not principal.tenant.sandbox,  # the simulator is polled
        )
        structlog.contextvars.bind_contextvars(request_id=job.request_id)
        key = request.idempotency_key
        if key is None:
            return await self._submit_new(principal, request, job)
        duplicate = await self._idempotency.claim(key, job)
        if duplicate is not None:
            return await self._original(duplicate)
        try:
            return await self._submit_new(principal, request, job)
        except BaseException:
            # Refused before it became a job (429, 402, a cache miss, Redis): the key is free for a retry.
            with contextlib.suppress(RedisError):
                if await self._store.get(job.request_id) is None:
                    await self._idempotency.release(key, job)
            raise

    async def _original(self, duplicate: Duplicate) -> Job:
        original = await self._idempotency.original(duplicate)
        if original is None:
            raise Conflict(
                "A request with this Idempotency-Key is still being accepted; retry in a moment",
                error_type="idempotency_in_progress",
            )
        log.info("idempotent_replay", original_request_id=original.request_id)
        return original

    async def _submit_new(self, principal: Principal, request: SubmitRequest, job: Job) -> Job:
        plan = await self._cache.plan(principal, request.endpoint, request.data, request.cache)
        answered = await self._answers.answer(principal, job, plan, request.cache)
        if answered is not None:
            return answered
        fal = upstream_for(job.sandbox, self._fal, self._sandbox_fal)  # a sandbox job never reaches fal
        try:
            fal.check_submit_allowed()  # an open circuit fails fast before admission reserves anything
            await self._admit(principal, job)
        except BaseException:
            with contextlib.suppress(RedisError):  # the refusal is the answer; a marker left expires on its own
                await self._cache.abandon(job)
            raise
        try:
            # One round trip, run in this order. The schedule entry comes first: if this replica dies anywhere after
            # it, the tracker finds the job. Once the record exists, the provisional slot and reservation are made to
            # last as long as the job may run.
            await self._record(job)
            await self._cache.leader_recorded(job)
        except BaseException:
            await self._completion.complete(job, **failed_fields(503, NOT_SUBMITTED, "state_store_unavailable"))
            raise
        query = dict(request.query)
        if job.upstream_webhook and (receiver := receiver_url(self._s, job.request_id)) is not None:
            query["fal_webhook"] = receiver
        try:
            submitted = await fal.submit(request.endpoint, job.input, headers=request.headers, query=query)
        except UpstreamError as exc:
            raise await self._submit_failed(job, exc) from exc
        except BaseException:
            await self._completion.complete(job, **failed_fields(502, INTERRUPTED, "upstream_submit_unknown"))
            raise
        await self._submitted(job, request.endpoint, submitted.upstream_id, submitted.queue_position)
        return job

    async def _admit(self, principal: Principal, job: Job) -> None:
        tenant = principal.tenant
        window = tenant_period(tenant, job.created_at)
        # A sandbox job reserves nothing and has no budget to fit, so nothing is ever settled: its spend stays 0.
        estimate = 0 if job.sandbox else job.estimate_micros or 0
        reservation = Reservation(
            estimate_micros=estimate,
            period=window,
            limit_micros=tenant.budget.limit_micros if tenant.budget and not job.sandbox else None,
            expires_at_ms=self._ms(job.created_at + self._s.admission_provisional_seconds),
        )
        # On the reconciler's work list before anything is reserved: a reservation taken by a stalled Redis after this
        # process gave up on it is then still found and released.
        await self._ledger.track_tenant(tenant.id)
        try:
            admitted = await self._admission.admit(
                tenant.id,
                tenant.policy,
                job.request_id,
                lease_seconds=self._s.admission_provisional_seconds,
                reservation=reservation,
            )
        except TooManyRequests as exc:
            self._metrics.requests_rejected.labels(reason=exc.rule).inc()
            raise
        except BudgetExceeded:
            self._metrics.requests_rejected.labels(reason="budget").inc()
            self._metrics.budget_rejections.labels(tenant=tenant.id).inc()
            log.info("budget_rejected", tenant_id=tenant.id, estimate_micros=estimate)
            raise
        committed = admitted.spent_micros + admitted.reserved_micros
        await self._budgets.after_reservation(
            tenant, window, committed_before=committed - estimate, committed_after=committed
        )

    async def _submit_failed(self, job: Job, exc: UpstreamError) -> UpstreamError:
        """End a job whose submit failed and return the error for its client. A submit that timed out may have been
        accepted by fal: it is reported as unknown, and nothing is retried."""
        error: UpstreamError = exc
        if isinstance(exc, UpstreamTimeout):
            error = UpstreamTimeout(SUBMIT_UNKNOWN, error_type="upstream_submit_unknown", headers=NOT_RETRIED)
        log.warning(
            "job_submit_failed",
            error_type=error.error_type,
            status=error.status_code,
            sent=not isinstance(exc, RequestNotSent),
        )
        # Requests that attached to this one while its submit was in flight fail the same way.
        await self._completion.complete(
            job, **failed_fields(error.status_code, error.message, error.error_type, error.body())
        )
        return error

    async def _submitted(self, job: Job, endpoint: Endpoint, upstream_id: str, position: int | None) -> None:
        """fal accepted the job: record its id (retried through a Redis outage, never dropped) and, in the same
        round trip, schedule its first poll and read the record back. Once the record is written nothing here may
        fail the request: a later step that cannot reach Redis is left to the tracker, which finds the job through
        its existing schedule entry."""
        job.state, job.upstream_id, job.queue_position = JobState.IN_QUEUE, upstream_id, position
        submitted = self._metrics.sandbox_jobs_submitted if job.sandbox else self._metrics.jobs_submitted
        submitted.labels(endpoint=endpoint.id, mode=job.mode.value).inc()
        accepted = Accepted(job.request_id, upstream_id, position, time.monotonic())
        first_poll = self._s.fal_webhook_poll_seconds if job.upstream_webhook else self._s.tracker_poll_initial_seconds
        # The first poll's schedule entry and the record read back ride in the id write's round trip.
        poll = ScheduleAndRead(self._store, self._due, job.request_id, self._ms(self._clock() + first_poll))
        written = await self._recorder.record(accepted, within=self._s.upstream_submit_timeout_seconds, rider=poll)
        if written is None:
            raise AcceptedNotRecorded(job.request_id)
        log.info("job_submitted", endpoint=endpoint.id, mode=job.mode.value, tenant_id=job.tenant_id)
        if poll.failed:
            log.warning("job_first_poll_not_scheduled", note="the tracker finds it at its submit deadline")
        try:
            current = poll.current if written else None
            if current is not None and current.cancel_requested:  # cancelled while the submit was in flight
                await upstream_for(job.sandbox, self._fal, self._sandbox_fal).cancel(endpoint, upstream_id)
                await self._due.schedule(job.request_id, self._ms(self._clock()))
        except RedisError:
            log.warning("job_first_poll_not_scheduled", note="the tracker finds it at its submit deadline")

    async def _record(self, job: Job) -> None:
        """Schedule entry, record and history, and the admission's confirmation: one round trip, run in this order.
        Every command in it is idempotent, so a Redis that lost the confirmation script (a restart) gets the script
        and the whole pipeline again."""
        for attempt in (1, 2):
            async with self._store.pipeline() as pipe:
                self._due.schedule_in(pipe, job.request_id, self._ms(job.created_at + self._s.submit_grace_seconds))
                self._store.create_in(pipe, job)
                self._admission.confirm_in(
                    pipe,
                    job.tenant_id,
                    job.request_id,
                    lease_seconds=self._s.concurrency_lease_seconds + self._s.submit_grace_seconds,
                    reservation_expires_at_ms=self._ms(job.created_at + self._s.reservation_ttl_seconds),
                )
                try:
                    await pipe.execute()
                except NoScriptError:
                    if attempt == 2:
                        raise
                else:
                    return
            await self._admission.load_scripts()

    @staticmethod
    def _ms(seconds: float) -> int:
        return int(seconds * 1000)
