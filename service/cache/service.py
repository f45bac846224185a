"""The result cache's policy: which requests are cacheable under which key, the claim, and filling the cache.

A cacheable request (explicit seed, or a tenant that opted in to seedless caching) is answered from the cache when
it can be. Otherwise, if an identical request is already in flight, the claim says so and the request becomes a
*follower* of it (bookkeeping in ``service/jobs/followers.py``): one submit, one charge (to the leader). Else it
*leads*: it is submitted as usual and its successful result is cached. Failures are never cached. Hits and
followers cost nothing and reserve nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import structlog

from service.cache.images import ImageHasher
from service.cache.store import Claim, ResultCache
from service.config import Settings
from service.domain.cachekeys import IMAGE_FIELDS, cache_key, is_cacheable, scope_of
from service.domain.endpoints import Endpoint
from service.domain.jobs import Job, Outcome
from service.domain.schemas import TextToVideoInput
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
    generation: int = 0


class CacheService:
    def __init__(  # noqa: PLR0913 - the store, both hashers, settings, metrics and the clock
        self,
        cache: ResultCache,
        *,
        hasher: ImageHasher | None,
        settings: Settings,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        sandbox_hasher: ImageHasher | None = None,
    ) -> None:
        self._cache = cache
        self._hasher = hasher
        self._sandbox_hasher = sandbox_hasher  # sandbox tenants' images are read through the sandbox simulator
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
        sandbox = principal.tenant.sandbox
        scope = scope_of(principal.tenant_id, policy.cache_namespace, sandbox=sandbox)
        # The key embeds the scope's generation, so a purge of the scope makes every older entry unreachable.
        generation = await self._cache.generation(scope)
        digests = await self._image_digests(data, self._sandbox_hasher if sandbox else self._hasher)
        ttl = min(
            policy.cache_ttl_seconds or self._settings.cache_ttl_seconds,
            self._settings.upstream_media_retention_seconds,
        )
        key = cache_key(scope, endpoint.id, data, digests, generation=generation)
        return CachePlan(key, scope, ttl, directive, generation)

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

    async def abandon(self, job: Job) -> None:
        """A leader refused before it became a job (a limit, its budget, an open circuit): its in-flight marker goes
        at once, so an identical retry is a request of its own, not merged into one that will never run."""
        if job.cache_key and job.cache_role == "leader":
            await self._cache.release(job.cache_key, job.request_id)

    async def finish(self, job: Job) -> None:
        """A leader (or bypass request) finished: cache a success and drop the in-flight marker. Idempotent: a
        replica that takes over repeats it harmlessly."""
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
                generation=job.cache_generation or 0,
            )
        await self._cache.release(job.cache_key, job.request_id)

    async def _image_digests(self, data: TextToVideoInput, hasher: ImageHasher | None) -> dict[str, str]:
        if hasher is None or not self._settings.cache_content_hashing:
            return {}
        urls = {field: url for field in IMAGE_FIELDS if isinstance(url := getattr(data, field, None), str)}
        return await hasher.digests(urls) if urls else {}
