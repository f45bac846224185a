"""Rate and concurrency limits per tenant, holding across replicas: one Lua script per admission decision.

The rate limit is a sliding one-minute window of admitted requests. The concurrency limit counts unfinished jobs as
leases in a ZSET: the tracker renews a job's lease while it follows the job and removes it when the job finishes,
fails or is cancelled; if every replica following a job dies, its lease runs out and the slot frees itself.
Replicas' clocks are assumed NTP-synchronised: skew of milliseconds is irrelevant at minute scale.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from service import keys
from service.domain.policy import TenantPolicy
from service.errors import TooManyRequests
from service.redis_client import load_script

WINDOW_MS = 60_000
_MESSAGES = {
    "requests_per_minute": "This tenant's limit of {limit} requests per minute is reached",
    "max_concurrent": "This tenant's limit of {limit} concurrent requests is reached",
}


@dataclass(frozen=True, slots=True)
class Usage:
    requests_last_minute: int
    in_flight: int


class Admission:
    def __init__(self, redis: Redis, *, lease_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._lease_ms = int(lease_seconds * 1000)
        self._clock = clock
        self._admit = load_script(redis, "service.tenants", "admit.lua")

    async def admit(self, tenant_id: str, policy: TenantPolicy, request_id: str, *, extra_lease_seconds: float) -> None:
        """Take a rate slot and a concurrency slot for ``request_id``, or raise 429 naming the limit."""
        lease_ms = self._lease_ms + int(extra_lease_seconds * 1000)
        result = await self._admit(
            keys=[keys.rate_window(tenant_id), keys.inflight(tenant_id)],
            args=[
                self._now_ms(),
                request_id,
                policy.requests_per_minute or 0,
                policy.max_concurrent or 0,
                lease_ms,
                WINDOW_MS,
            ],
        )
        if int(result[0]) == 1:
            return
        rule = str(result[1])
        limit = policy.requests_per_minute if rule == "requests_per_minute" else policy.max_concurrent
        raise TooManyRequests(_MESSAGES[rule].format(limit=limit), retry_after=int(result[2]) / 1000, rule=rule)

    async def renew(self, tenant_id: str, request_id: str) -> None:
        """Extend a running job's lease; does nothing for a job that no longer holds one."""
        await self._redis.zadd(keys.inflight(tenant_id), {request_id: self._now_ms() + self._lease_ms}, xx=True)

    async def release(self, tenant_id: str, request_id: str) -> None:
        await self._redis.zrem(keys.inflight(tenant_id), request_id)

    async def usage(self, tenant_id: str) -> Usage:
        now = self._now_ms()
        rate = await self._redis.zcount(keys.rate_window(tenant_id), now - WINDOW_MS, "+inf")
        in_flight = await self._redis.zcount(keys.inflight(tenant_id), now, "+inf")
        return Usage(requests_last_minute=int(rate), in_flight=int(in_flight))

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
