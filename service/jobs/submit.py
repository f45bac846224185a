"""The submit pipeline: cache or single-flight answer, else admit -> record -> submit upstream -> record the id.

Errors that prove fal never accepted the job are raised to the client, and the job ends through the completion
path, which gives back everything admission took. Once fal may have accepted a job it is never re-submitted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from redis.exceptions import RedisError

from service.budgets.ledger import BudgetLedger
from service.budgets.usage import BudgetReader, tenant_period
from service.cache.service import CacheDirective, CachePlan, CacheService
from service.cache.store import Hit, Lead, Miss
from service.config import Settings
from service.domain.endpoints import Endpoint
from service.domain.jobs import Job, JobMode, JobState, Outcome, failed_fields
from service.domain.schemas import TextToVideoInput, normalized_input
from service.errors import BudgetExceeded, NotFound, TooManyRequests, UpstreamError, UpstreamTimeout
from service.jobs.completion import Completion
from service.jobs.fal_webhooks import fal_webhooks_on, receiver_url
from service.jobs.followers import Followers, outcome_of
from service.jobs.store import DueSchedule, JobStore
from service.metrics import Metrics
from service.tenants.admission import Admission, Reservation
from service.tenants.auth import Principal
from service.upstream.fal import FalClient, RequestNotSent

log = structlog.get_logger(__name__)
RECORD_ATTEMPTS = 4
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
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._s = settings
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
            estimate_micros=quote.cost_micros,
            upstream_webhook=fal_webhooks_on(self._s),
        )
        structlog.contextvars.bind_contextvars(request_id=job.request_id)
        plan = await self._cache.plan(principal, request.endpoint, request.data, request.cache)
        answered = await self._from_cache(principal, job, plan, request.cache)
        if answered is not None:
            return answered
        await self._admit(principal, job)
        try:
            # The schedule entry comes first: if this replica dies anywhere after it, the tracker finds the job.
            await self._due.schedule(job.request_id, self._ms(job.created_at + self._s.submit_grace_seconds))
            await self._store.create(job)
            await self._cache.leader_recorded(job)
        except BaseException:
            await self._completion.complete(job, **failed_fields(503, NOT_SUBMITTED, "state_store_unavailable"))
            raise
        query = dict(request.query)
        if job.upstream_webhook and (receiver := receiver_url(self._s, job.request_id)) is not None:
            query["fal_webhook"] = receiver
        try:
            submitted = await self._fal.submit(request.endpoint, job.input, headers=request.headers, query=query)
        except UpstreamError as exc:
            raise await self._submit_failed(job, exc) from exc
        except BaseException:
            await self._completion.complete(job, **failed_fields(502, INTERRUPTED, "upstream_submit_unknown"))
            raise
        await self._submitted(job, request.endpoint, submitted.upstream_id, submitted.queue_position)
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
        job.cache_generation = plan.generation
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
            answered = await self._record_hit(job, claim.entry)
            how = "hit"
        else:
            answered = await self._record_follower(job, claim.leader_id)
            how = "merged"
        self._metrics.cache_saved_micros.labels(tenant=principal.tenant_id, how=how).inc(saved)
        log.info(
            "cache_answered", how=how, tenant_id=principal.tenant_id, saved_micros=saved, leader_id=answered.leader_id
        )
        return answered

    async def _record_hit(self, job: Job, entry: dict[str, Any]) -> Job:
        """A cache hit is a job of its own (new request id) that completes at once with the cached result."""
        hit = replace(job, cache_role="hit", estimate_micros=0)
        await self._due.schedule(hit.request_id, self._ms(self._clock() + self._s.tracker_poll_max_seconds))
        await self._store.create(hit)
        values = {
            "outcome": Outcome.OK,
            "result": entry["result"],
            "inference_time": entry.get("inference_time"),
            "completed_at": self._clock(),
        }
        await self._completion.complete(hit, **values)
        return replace(hit, **values, state=JobState.COMPLETED)

    async def _record_follower(self, job: Job, leader_id: str) -> Job:
        follower = replace(
            job,
            state=JobState.IN_QUEUE,
            queue_position=0,
            cache_role="follower",
            leader_id=leader_id,
            estimate_micros=0,
        )
        await self._store.create(follower)
        await self._due.schedule(follower.request_id, self._ms(self._clock() + self._s.tracker_poll_max_seconds))
        leader = await self._followers.attach(follower)
        if leader is not None:
            await self._completion.complete(follower, **outcome_of(leader))
            return await self._store.get(follower.request_id) or follower
        return follower

    async def _admit(self, principal: Principal, job: Job) -> None:
        tenant = principal.tenant
        window = tenant_period(tenant, job.created_at)
        estimate = job.estimate_micros or 0
        reservation = Reservation(
            estimate_micros=estimate,
            period=window,
            limit_micros=tenant.budget.limit_micros if tenant.budget else None,
            expires_at_ms=self._ms(job.created_at + self._s.reservation_ttl_seconds),
        )
        try:
            admitted = await self._admission.admit(
                tenant.id,
                tenant.policy,
                job.request_id,
                extra_lease_seconds=self._s.submit_grace_seconds,
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

    async def _submit_failed(self, job: Job, exc: UpstreamError) -> UpstreamError:
        """End a job whose submit failed and return the error for its client. A submit that timed out may have been
        accepted by fal: it is reported as unknown, and nothing is retried."""
        error: UpstreamError = exc
        if isinstance(exc, UpstreamTimeout):
            error = UpstreamTimeout(SUBMIT_UNKNOWN, error_type="upstream_submit_unknown")
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
        job.state, job.upstream_id, job.queue_position = JobState.IN_QUEUE, upstream_id, position
        # fal has accepted (and will bill) the job: recording its upstream id is retried through a brief Redis
        # blip, because without it the job could only be failed later, unbilled to the tenant.
        applied = False
        for attempt in range(RECORD_ATTEMPTS):
            try:
                applied = await self._store.update(
                    job.request_id, state=job.state, upstream_id=upstream_id, queue_position=position
                )
                break
            except RedisError:
                if attempt == RECORD_ATTEMPTS - 1:
                    log.exception("job_record_lost", upstream_accepted=True)
                    raise
                await asyncio.sleep(0.1 * 2**attempt)
        first_poll = self._s.fal_webhook_poll_seconds if job.upstream_webhook else self._s.tracker_poll_initial_seconds
        await self._due.schedule(job.request_id, self._ms(self._clock() + first_poll))
        self._metrics.jobs_submitted.labels(endpoint=endpoint.id, mode=job.mode.value).inc()
        log.info("job_submitted", endpoint=endpoint.id, mode=job.mode.value, tenant_id=job.tenant_id)
        current = await self._store.get(job.request_id) if applied else None
        if current is not None and current.cancel_requested:  # cancelled while the submit was in flight
            await self._fal.cancel(endpoint, upstream_id)
            await self._due.schedule(job.request_id, self._ms(self._clock()))

    @staticmethod
    def _ms(seconds: float) -> int:
        return int(seconds * 1000)
