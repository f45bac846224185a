"""The request lifecycle: admit -> record -> submit upstream -> answer status, result, cancel and run from Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog
from redis.exceptions import RedisError

from service.budgets.ledger import BudgetLedger
from service.budgets.usage import BudgetReader, tenant_period
from service.cache.service import CacheDirective, CachePlan, CacheService
from service.cache.store import Hit, Lead, Miss
from service.config import Settings
from service.domain.endpoints import Endpoint, app_of, find_endpoint
from service.domain.jobs import Job, JobMode, JobState, Outcome, cancelled_fields
from service.domain.policy import check_request
from service.domain.schemas import InvalidInputError, TextToVideoInput, normalized_input, parse_input
from service.domain.urls import url_problem
from service.errors import (
    BadRequest,
    BudgetExceeded,
    InvalidRequest,
    NotFound,
    PolicyDenied,
    TooManyRequests,
    UpstreamError,
    UpstreamTimeout,
)
from service.jobs.events import JobEvents, watch_job
from service.jobs.store import DueSchedule, JobStore
from service.metrics import Metrics
from service.tenants.admission import Admission, Reservation
from service.tenants.auth import Principal
from service.upstream.fal import FalClient, RequestNotSent

log = structlog.get_logger(__name__)
RECORD_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class ResultResponse:
    status_code: int
    body: Any
    headers: dict[str, str]


class JobService:
    def __init__(  # noqa: PLR0913 - the service's collaborators, all explicit
        self,
        *,
        settings: Settings,
        store: JobStore,
        due: DueSchedule,
        fal: FalClient,
        events: JobEvents,
        admission: Admission,
        ledger: BudgetLedger,
        budgets: BudgetReader,
        cache: CacheService,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._admission = admission
        self._ledger = ledger
        self._budgets = budgets
        self._cache = cache
        self._settings = settings
        self._store = store
        self._due = due
        self._fal = fal
        self._events = events
        self._metrics = metrics
        self._clock = clock

    def endpoint(self, endpoint_id: str) -> Endpoint:
        endpoint = find_endpoint(endpoint_id)
        if endpoint is None:
            self._metrics.requests_rejected.labels(reason="unknown_endpoint").inc()
            raise NotFound(f"Application '{endpoint_id}' not found", error_type="application_not_found")
        return endpoint

    def validate(self, endpoint: Endpoint, raw: bytes, *, webhook_url: str | None) -> TextToVideoInput:
        """Validate body and webhook exactly as fal would, before anything is stored or sent."""
        try:
            data = parse_input(endpoint, raw)
        except InvalidInputError as exc:
            self._metrics.requests_rejected.labels(reason="invalid_input").inc()
            raise InvalidRequest(exc.detail) from None
        if webhook_url is not None:
            problem = url_problem(webhook_url, allow_private=self._settings.webhook_allow_private)
            if problem:
                self._metrics.requests_rejected.labels(reason="invalid_webhook").inc()
                raise InvalidRequest(
                    [{"type": "url_rejected", "loc": ["query", "fal_webhook"], "msg": problem, "input": webhook_url}]
                )
        return data

    def check_policy(self, principal: Principal, endpoint: Endpoint, data: TextToVideoInput) -> None:
        """Refuse a request outside the tenant's policy, naming the rule; nothing is recorded or sent."""
        violation = check_request(principal.tenant.policy, endpoint.id, data)
        if violation is not None:
            self._metrics.requests_rejected.labels(reason=f"policy_{violation.rule}").inc()
            raise PolicyDenied(violation.rule, violation.message, field=violation.field)

    async def submit(  # noqa: PLR0913 - mirrors fal's submit: endpoint, body, webhook, headers, query
        self,
        principal: Principal,
        endpoint: Endpoint,
        data: TextToVideoInput,
        *,
        mode: JobMode,
        webhook_url: str | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        cache: CacheDirective = CacheDirective.DEFAULT,
    ) -> Job:
        """Answer from the cache (or attach to an identical request in flight) when possible; otherwise admit (rate,
        concurrency and budget at once), record, then submit upstream. Errors that prove fal never
        accepted the job are raised, and everything admission took is given back."""
        quote = self._ledger.estimate(data)
        job = Job(
            request_id=str(uuid.uuid4()),
            tenant_id=principal.tenant_id,
            endpoint_id=endpoint.id,
            mode=mode,
            input=normalized_input(data),
            created_at=self._clock(),
            webhook_url=webhook_url,
            tenant_uid=principal.tenant.uid,
            estimate_micros=quote.cost_micros,
        )
        structlog.contextvars.bind_contextvars(request_id=job.request_id)
        answered = await self._from_cache(
            principal, job, await self._cache.plan(principal, endpoint, data, cache), cache
        )
        if answered is not None:
            return answered
        await self._admit(principal, job)
        try:
            # The schedule entry comes first: if this replica dies anywhere after it, the tracker finds the job.
            await self._due.schedule(job.request_id, self._ms(job.created_at + self._settings.submit_grace_seconds))
            await self._store.create(job)
            await self._cache.leader_recorded(job)
            submitted = await self._fal.submit(endpoint, job.input, headers=headers or {}, query=query or {})
        except UpstreamError as exc:
            await self._fail_submit(job, exc)
            raise
        except BaseException:
            await self._give_back(job)
            raise
        await self._submitted(job, endpoint, submitted.upstream_id, submitted.queue_position)
        return job

    async def _from_cache(
        self, principal: Principal, job: Job, plan: CachePlan | None, directive: CacheDirective
    ) -> Job | None:
        """A hit or a follower answers the request (returned); None means submit it (maybe as the leader)."""
        if plan is None:
            if directive is CacheDirective.ONLY_IF_CACHED:
                raise NotFound(
                    "This request is not cacheable (it has no seed), so it is never in the cache",
                    error_type="cache_miss",
                )
            return None
        job.cache_key, job.cache_scope, job.cache_ttl = plan.key, plan.scope, plan.ttl
        if directive is CacheDirective.BYPASS:
            job.cache_role = "bypass"
            self._metrics.cache_bypasses.inc()
            return None
        claim = await self._cache.claim(plan, job.request_id)
        if isinstance(claim, Lead):
            job.cache_role = "leader"
            return None
        if isinstance(claim, Miss):
            raise NotFound("No cached result for this request", error_type="cache_miss")
        saved = job.estimate_micros or 0
        if isinstance(claim, Hit):
            answered = await self._cache.hit_job(job, claim.entry)
            how = "hit"
        else:
            answered = replace(
                job,
                state=JobState.IN_QUEUE,
                queue_position=0,
                cache_role="follower",
                leader_id=claim.leader_id,
                estimate_micros=0,
            )
            await self._store.create(answered)
            await self._due.schedule(
                answered.request_id, self._ms(self._clock() + self._settings.tracker_poll_max_seconds)
            )
            await self._cache.attach(answered)
            how = "merged"
        self._metrics.cache_saved_micros.labels(tenant=principal.tenant_id, how=how).inc(saved)
        log.info(
            "cache_answered", how=how, tenant_id=principal.tenant_id, saved_micros=saved, leader_id=answered.leader_id
        )
        return answered

    async def _admit(self, principal: Principal, job: Job) -> None:
        tenant = principal.tenant
        window = tenant_period(tenant, job.created_at)
        estimate = job.estimate_micros or 0
        reservation = Reservation(
            estimate_micros=estimate,
            period=window,
            limit_micros=tenant.budget.limit_micros if tenant.budget else None,
            expires_at_ms=self._ms(job.created_at + self._settings.reservation_ttl_seconds),
        )
        try:
            admitted = await self._admission.admit(
                tenant.id,
                tenant.policy,
                job.request_id,
                extra_lease_seconds=self._settings.submit_grace_seconds,
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
        await self._ledger.track_tenant(tenant.id)
        committed = admitted.spent_micros + admitted.reserved_micros
        await self._budgets.after_reservation(
            tenant, window, committed_before=committed - estimate, committed_after=committed
        )

    async def _give_back(self, job: Job) -> None:
        """Return what admission took for a job that never reached fal: its concurrency slot, its reservation, and
        its in-flight cache marker."""
        await self._admission.release(job.tenant_id, job.request_id)
        await self._ledger.release(job.tenant_id, job.request_id)
        await self._cache.abandon(job)

    async def _submitted(self, job: Job, endpoint: Endpoint, upstream_id: str, position: int | None) -> None:
        job.state, job.upstream_id, job.queue_position = JobState.IN_QUEUE, upstream_id, position
        # fal has accepted (and will bill) the job: recording its upstream id is retried through a brief Redis
        # blip, because without it the job could only be failed later, unbilled to the tenant.
        for attempt in range(RECORD_ATTEMPTS):
            try:
                await self._store.update(
                    job.request_id, state=job.state, upstream_id=upstream_id, queue_position=position
                )
                break
            except RedisError:
                if attempt == RECORD_ATTEMPTS - 1:
                    log.exception("job_record_lost", upstream_accepted=True)
                    raise
                await asyncio.sleep(0.1 * 2**attempt)
        await self._due.schedule(job.request_id, self._ms(self._clock() + self._settings.tracker_poll_initial_seconds))
        self._metrics.jobs_submitted.labels(endpoint=endpoint.id, mode=job.mode.value).inc()
        log.info("job_submitted", endpoint=endpoint.id, mode=job.mode.value, tenant_id=job.tenant_id)
        current = await self._store.get(job.request_id)
        if current is not None and current.cancel_requested:  # cancelled while the submit was in flight
            await self._fal.cancel(endpoint, upstream_id)
            await self._due.schedule(job.request_id, self._ms(self._clock()))

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
        """A follower shows its leader's progress; a detached leader shows the cancellation its client asked for."""
        if job.detached:
            return replace(job, state=JobState.COMPLETED, result=None, **cancelled_fields())
        if job.leader_id is not None and not job.done:
            return self._cache.merged(job, await self._store.get(job.leader_id))
        return job

    async def cancel(self, principal: Principal, app: str, request_id: str) -> bool:
        """True when cancellation was requested, False when the job had already completed.

        Requests sharing one upstream job never cancel each other: a follower is detached from it, and a leader
        with live followers is detached while the job runs on for them (the leader still pays for it)."""
        job = await self.get(principal, app, request_id)
        if job.done:
            return False
        if job.leader_id is not None:
            await self._store.complete(request_id, completed_at=self._clock(), **cancelled_fields())
            await self._due.finish(request_id)
            return True
        if await self._cache.has_live_followers(job):
            return await self._store.update(request_id, detached=True)
        if job.upstream_id is None:
            # Submit still in flight: the submitter sees the flag and cancels upstream as soon as it has an id.
            return await self._store.update(request_id, cancel_requested=True)
        if not await self._fal.cancel(self.endpoint(job.endpoint_id), job.upstream_id):
            await self._due.schedule(request_id, self._ms(self._clock()))  # fal finished first: fetch it now
            return False
        await self._store.update(request_id, cancel_requested=True)
        await self._due.schedule(request_id, self._ms(self._clock()))
        return True

    async def watch(self, request_id: str) -> AsyncIterator[Job | None]:
        """The job as its client sees it, now and after every change, until COMPLETED."""
        first = await self._store.get(request_id)
        follows = first.leader_id if first is not None and not first.done and not first.detached else None
        async for seen in watch_job(
            self._store, self._events, follows or request_id, fallback_seconds=self._settings.watch_fallback_seconds
        ):
            if seen is None or first is None:
                yield seen
                continue
            if follows:
                mine = await self._store.get(request_id)
                yield await self.view(mine) if mine is not None and mine.done else self._cache.merged(first, seen)
            else:
                yield await self.view(seen)
            if (follows and seen.done) or (not follows and seen.detached):
                return

    async def wait_done(self, request_id: str, *, timeout: float) -> Job | None:  # noqa: ASYNC109 - a deadline
        """Wait for the job to complete; the last record seen (not done) if ``timeout`` runs out first."""
        deadline = time.monotonic() + timeout
        last: Job | None = None
        watcher = self.watch(request_id)
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    last = await asyncio.wait_for(anext(watcher), remaining)
                except (StopAsyncIteration, TimeoutError):
                    break
                if last is None or last.done:
                    break
        finally:
            await watcher.aclose()  # type: ignore[attr-defined]
        return last

    async def _fail_submit(self, job: Job, exc: UpstreamError) -> None:
        """Record why the submit failed. Nothing is retried once fal may have accepted the request."""
        if isinstance(exc, UpstreamTimeout):
            exc.message = "fal did not confirm the submission in time; it was not retried, to avoid paying twice"
            exc.error_type = "upstream_submit_unknown"
        log.warning(
            "job_submit_failed",
            error_type=exc.error_type,
            status=exc.status_code,
            sent=not isinstance(exc, RequestNotSent),
        )
        failure: dict[str, Any] = {
            "outcome": Outcome.ERROR,
            "completed_at": self._clock(),
            "error": exc.message,
            "error_type": exc.error_type,
            "error_status": exc.status_code,
            "error_body": exc.body(),
        }
        # Requests that attached to this one while its submit was in flight fail the same way.
        await self._cache.finish(replace(job, state=JobState.COMPLETED, **failure))
        await self._store.complete(job.request_id, **failure)
        await self._due.finish(job.request_id)
        await self._give_back(job)

    @staticmethod
    def _ms(seconds: float) -> int:
        return int(seconds * 1000)


def result_response(job: Job) -> ResultResponse:
    """What ``GET .../requests/{id}`` (and ``/run``) answers for a job."""
    if not job.done:
        # [UNCERTAIN] fal's answer before completion is not documented; 400 with a request-error body is the most
        # plausible, and neither official client ever asks early.
        error = BadRequest("Request is still in progress", error_type="request_in_progress")
        return ResultResponse(error.status_code, error.body(), error.response_headers())
    if job.outcome is Outcome.OK:
        return ResultResponse(200, job.result, {})
    headers = {"X-Fal-Error-Type": job.error_type} if job.error_type and job.error_type != "validation_error" else {}
    body = job.error_body if job.error_body is not None else {"detail": job.error, "error_type": job.error_type}
    return ResultResponse(job.error_status or 500, body, headers)


def _plausible_id(request_id: str) -> bool:
    try:
        uuid.UUID(request_id)
    except ValueError:
        return False
    return True
