"""Answering a request without a submit: from the result cache (a hit), or by merging it into an identical request
already in flight (a follower). Either is a job of its own, under its own request id, ended by the completion path;
it costs nothing and reserves nothing. Otherwise the request leads (or bypasses the cache) and is submitted."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import structlog

from service.cache.service import CacheDirective, CachePlan, CacheService
from service.cache.store import Hit, Lead, Miss
from service.config import Settings
from service.domain.jobs import Job, JobState, Outcome
from service.errors import NotFound
from service.jobs.completion import Completion
from service.jobs.followers import Followers, outcome_of
from service.jobs.store import DueSchedule, JobStore
from service.metrics import Metrics
from service.tenants.auth import Principal

log = structlog.get_logger(__name__)


class CacheAnswers:
    def __init__(  # noqa: PLR0913 - collaborators, all explicit
        self,
        *,
        settings: Settings,
        store: JobStore,
        due: DueSchedule,
        cache: CacheService,
        followers: Followers,
        completion: Completion,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._s = settings
        self._store = store
        self._due = due
        self._cache = cache
        self._followers = followers
        self._completion = completion
        self._metrics = metrics
        self._clock = clock

    async def answer(
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
        # The schedule entry first, as for every job: if anything fails after it, the tracker finds the follower.
        await self._due.schedule(follower.request_id, self._ms(self._clock() + self._s.tracker_poll_max_seconds))
        await self._store.create(follower)
        leader = await self._followers.attach(follower)
        if leader is not None:
            await self._completion.complete(follower, **outcome_of(leader))
            return await self._store.get(follower.request_id) or follower
        return follower

    def _ms(self, seconds: float) -> int:
        return int(seconds * 1000)
