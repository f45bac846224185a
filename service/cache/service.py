"""Caching by seed and input hash, and single-flight: pay once for identical requests.

A cacheable request (explicit seed, or a tenant that opted in to seedless caching) is answered from the cache when
it can be. Otherwise, if an identical request is already in flight, it attaches to that request's upstream job as a
*follower*: one submit, one charge (to the leader), and every request id sees the same progress and result. Else it
*leads*: it is submitted as usual and its successful result is cached. Failures are never cached, and a leader's
failure is its followers' failure. Hits and followers cost nothing and reserve nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import structlog

from service.cache.images import ImageHasher
from service.cache.store import Claim, ResultCache
from service.config import Settings
from service.domain.cachekeys import IMAGE_FIELDS, cache_key, is_cacheable, scope_of
from service.domain.endpoints import Endpoint
from service.domain.jobs import Job, JobState, Outcome
from service.domain.schemas import TextToVideoInput
from service.jobs.store import JobStore
from service.metrics import Metrics
from service.tenants.auth import Principal

log = structlog.get_logger(__name__)
CACHEABLE_ROLES = frozenset({"leader", "bypass"})


class CacheDirective(StrEnum):
    DEFAULT = "default"
    BYPASS = "bypass"
    ONLY_IF_CACHED = "only-if-cached"


def directive_of(headers: Mapping[str, str]) -> CacheDirective:
    """``x-gateway-cache: bypass | only-if-cached``, or ``Cache-Control: no-cache`` (= bypass)."""
    explicit = (headers.get("x-gateway-cache") or "").strip().lower()
    if explicit in {CacheDirective.BYPASS, CacheDirective.ONLY_IF_CACHED}:
        return CacheDirective(explicit)
    directives = {d.strip().lower() for d in (headers.get("cache-control") or "").split(",")}
    return CacheDirective.BYPASS if "no-cache" in directives else CacheDirective.DEFAULT


@dataclass(frozen=True, slots=True)
class CachePlan:
    key: str
    scope: str
    ttl: int
    directive: CacheDirective


class CacheService:
    def __init__(  # noqa: PLR0913 - collaborators, all explicit
        self,
        cache: ResultCache,
        store: JobStore,
        *,
        hasher: ImageHasher | None,
        settings: Settings,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cache = cache
        self._store = store
        self._hasher = hasher
        self._settings = settings
        self._metrics = metrics
        self._clock = clock

    async def plan(
        self, principal: Principal, endpoint: Endpoint, data: TextToVideoInput, directive: CacheDirective
    ) -> CachePlan | None:
        """The cache key and lifetime of a cacheable request, or None when it must not be cached."""
        policy = principal.tenant.policy
        if not self._settings.cache_enabled or policy.cache is False:
            return None
        if not is_cacheable(data, seedless=bool(policy.cache_seedless)):
            return None
        scope = scope_of(principal.tenant_id, policy.cache_namespace)
        digests = await self._image_digests(data)
        ttl = min(
            policy.cache_ttl_seconds or self._settings.cache_ttl_seconds,
            self._settings.upstream_media_retention_seconds,
        )
        return CachePlan(cache_key(scope, endpoint.id, data, digests), scope, ttl, directive)

    async def claim(self, plan: CachePlan, request_id: str) -> Claim:
        # The marker lives for the submit grace until the leader is recorded (then it is extended): long enough for
        # the leader's submit, short if its replica dies first.
        claim = await self._cache.claim(
            plan.key,
            request_id,
            only_if_cached=plan.directive is CacheDirective.ONLY_IF_CACHED,
            marker_ttl=self._settings.submit_grace_seconds,
        )
        self._metrics.cache_lookups.labels(outcome=type(claim).__name__.lower()).inc()
        return claim

    async def leader_recorded(self, job: Job) -> None:
        if job.cache_key and job.cache_role == "leader":
            await self._cache.extend_marker(job.cache_key, job.request_id, self._settings.reservation_ttl_seconds)

    async def attach(self, follower: Job) -> None:
        """Register a follower with its leader; if the leader already finished, finish the follower now."""
        assert follower.leader_id is not None
        await self._store.add_follower(follower.leader_id, follower.request_id)
        leader = await self._store.get(follower.leader_id)
        if leader is not None and leader.done:
            await self.complete_follower(follower, leader)

    async def finish(self, job: Job) -> None:
        """A leader (or bypass request) finished: cache a success, drop the in-flight marker, finish followers.
        Idempotent: a replica that takes over repeats it harmlessly."""
        if not job.cache_key or job.cache_role not in CACHEABLE_ROLES or not job.done:
            return
        if job.outcome is Outcome.OK and job.cache_scope and job.cache_ttl:
            await self._cache.put(
                job.cache_key,
                job.cache_scope,
                {
                    "result": job.result,
                    "inference_time": job.inference_time,
                    "request_id": job.request_id,
                    "endpoint_id": job.endpoint_id,
                    "cached_at": self._clock(),
                },
                job.cache_ttl,
            )
        await self._cache.release(job.cache_key, job.request_id)
        for follower_id in await self._store.followers(job.request_id):
            follower = await self._store.get(follower_id)
            if follower is not None:
                await self.complete_follower(follower, job)

    async def abandon(self, job: Job) -> None:
        """A leader that never reached fal gives up its in-flight marker, so the next identical request leads."""
        if job.cache_key and job.cache_role == "leader":
            await self._cache.release(job.cache_key, job.request_id)

    async def has_live_followers(self, job: Job) -> bool:
        for follower_id in await self._store.followers(job.request_id):
            follower = await self._store.get(follower_id)
            if follower is not None and not follower.done:
                return True
        return False

    async def complete_follower(self, follower: Job, leader: Job) -> bool:
        """Give a follower its leader's outcome (its own id, tenant and webhook stay its own). Exactly once."""
        copied = {
            name: getattr(leader, name)
            for name in (
                "outcome",
                "result",
                "error",
                "error_type",
                "error_status",
                "error_body",
                "inference_time",
                "logs",
            )
        }
        done = await self._store.complete(follower.request_id, completed_at=self._clock(), **copied)
        if done:
            self._metrics.jobs_completed.labels(endpoint=follower.endpoint_id, outcome=leader.outcome or "error").inc()
        return done

    async def hit_job(self, job: Job, entry: Mapping[str, Any]) -> Job:
        """Record a cache hit: a new request id, COMPLETED at once, with the original result. Costs nothing."""
        hit = replace(
            job,
            state=JobState.COMPLETED,
            outcome=Outcome.OK,
            result=entry["result"],
            inference_time=entry.get("inference_time"),
            completed_at=self._clock(),
            cache_role="hit",
            estimate_micros=0,
        )
        await self._store.create(hit)
        return hit

    def merged(self, follower: Job, leader: Job | None) -> Job:
        """What a follower's client sees while its leader runs: the leader's progress under its own identity."""
        if leader is None or follower.done:
            return follower
        return replace(
            leader,
            request_id=follower.request_id,
            tenant_id=follower.tenant_id,
            tenant_uid=follower.tenant_uid,
            mode=follower.mode,
            created_at=follower.created_at,
            webhook_url=follower.webhook_url,
            cache_role=follower.cache_role,
            leader_id=leader.request_id,
            cache_key=follower.cache_key,
            estimate_micros=0,
            upstream_id=None,
        )

    async def _image_digests(self, data: TextToVideoInput) -> dict[str, str]:
        if self._hasher is None or not self._settings.cache_content_hashing:
            return {}
        urls = {field: url for field in IMAGE_FIELDS if isinstance(url := getattr(data, field, None), str)}
        return await self._hasher.digests(urls) if urls else {}
