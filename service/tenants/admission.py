"""Rate, concurrency and budget admission per tenant, holding across replicas: one Lua script per decision.

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
from redis.asyncio.client import Pipeline

from service import keys
from service.domain.budgets import PeriodWindow
from service.domain.policy import TenantPolicy
from service.errors import BudgetExceeded, TooManyRequests
from service.redis_client import load_script

WINDOW_MS = 60_000
_MESSAGES = {
    "requests_per_minute": "This tenant's limit of {limit} requests per minute is reached",
    "max_concurrent": "This tenant's limit of {limit} concurrent requests is reached",
}


@dataclass(frozen=True, slots=True)
class Reservation:
    """What to reserve against the tenant's budget: the estimate, the period it is booked to, and the limit
    (None: unlimited, but still booked so usage is reported)."""

    estimate_micros: int
    period: PeriodWindow
    limit_micros: int | None
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class Admitted:
    """The tenant's budget period right after this admission (``reserved`` includes this request)."""

    spent_micros: int
    reserved_micros: int


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
        self._confirm = load_script(redis, "service.tenants", "confirm.lua")

    async def admit(
        self,
        tenant_id: str,
        policy: TenantPolicy,
        request_id: str,
        *,
        lease_seconds: float,
        reservation: Reservation,
    ) -> Admitted:
        """Take a rate slot, a concurrency slot and the budget reservation for ``request_id`` in one atomic step,
        or raise 429 / 402 naming what refused it (and take nothing). The slot is held for ``lease_seconds`` (the
        provisional lease the caller confirms with :meth:`confirm` once the job is recorded)."""
        lease_ms = int(lease_seconds * 1000)
        limit = -1 if reservation.limit_micros is None else reservation.limit_micros
        result = await self._admit(
            keys=[
                keys.rate_window(tenant_id),
                keys.inflight(tenant_id),
                keys.budget(tenant_id, reservation.period.id),
                keys.reservations(tenant_id),
                keys.reservation_expiry(tenant_id),
            ],
            args=[
                self._now_ms(),
                request_id,
                policy.requests_per_minute or 0,
                policy.max_concurrent or 0,
                lease_ms,
                WINDOW_MS,
                reservation.estimate_micros,
                limit,
                reservation.expires_at_ms,
                reservation.period.id,
            ],
        )
        if int(result[0]) == 1:
            return Admitted(spent_micros=int(result[1]), reserved_micros=int(result[2]))
        rule = str(result[1])
        if rule == "budget":
            end = reservation.period.end
            raise BudgetExceeded(
                limit=limit,
                spent=int(result[2]),
                reserved=int(result[3]),
                estimate=reservation.estimate_micros,
                period_end=end.isoformat().replace("+00:00", "Z") if end else None,
            )
        limit_of_rule = policy.requests_per_minute if rule == "requests_per_minute" else policy.max_concurrent
        raise TooManyRequests(_MESSAGES[rule].format(limit=limit_of_rule), retry_after=int(result[2]) / 1000, rule=rule)

    def confirm_in(
        self, pipe: Pipeline, tenant_id: str, request_id: str, *, lease_seconds: float, reservation_expires_at_ms: int
    ) -> None:
        """Extend a provisional admission to its full lifetime once its job is recorded (``lua/confirm.lua``), queued
        on ``pipe`` after the record's writes; its reply is 1 if the slot was still held.

        A bare EVALSHA: redis-py would check every script of a pipeline with SCRIPT EXISTS first (one more round trip
        per pipeline). A pipeline that meets a Redis which lost its scripts fails with ``NoScriptError`` instead, and
        its caller runs :meth:`load_scripts` and the pipeline again. Sent as a raw command: redis-py's cluster
        pipeline refuses its ``evalsha`` method but routes a raw EVALSHA by its keys like any other command."""
        pipe.execute_command(
            "EVALSHA",
            self._confirm.sha,
            2,
            keys.inflight(tenant_id),
            keys.reservation_expiry(tenant_id),
            request_id,
            self._now_ms() + int(lease_seconds * 1000),
            reservation_expires_at_ms,
        )

    async def load_scripts(self) -> None:
        await self._redis.script_load(self._confirm.script)

    def renew_in(self, pipe: Pipeline, tenant_id: str, request_id: str) -> None:
        """Extend a running job's lease, queued on ``pipe``; does nothing for a job that no longer holds one."""
        pipe.zadd(keys.inflight(tenant_id), {request_id: self._now_ms() + self._lease_ms}, xx=True)

    async def release(self, tenant_id: str, request_id: str) -> None:
        await self._redis.zrem(keys.inflight(tenant_id), request_id)

    async def usage(self, tenant_id: str) -> Usage:
        now = self._now_ms()
        rate = await self._redis.zcount(keys.rate_window(tenant_id), now - WINDOW_MS, "+inf")
        in_flight = await self._redis.zcount(keys.inflight(tenant_id), now, "+inf")
        return Usage(requests_last_minute=int(rate), in_flight=int(in_flight))

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
