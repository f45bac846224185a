"""Settlement and release of budget reservations, and reconciliation of reservations whose jobs were lost.

A reservation is taken at admission (``service/tenants/lua/admit.lua``) for the request's estimate. When the job
finishes, the tracker settles it (success: fal bills it) or releases it in full (failure or cancellation: fal does
not bill those). Both are idempotent Lua scripts keyed on the open reservation, so settling twice charges once and
nothing is released twice. A reservation past its expiry is reconciled against its job record: settled if the job
succeeded, extended if the job is still running, released if it failed or is gone. Budgets never leak.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from enum import StrEnum
from typing import cast

import structlog
from redis.asyncio import Redis

from service import keys
from service.budgets.media import MediaProbe
from service.domain.budgets import Charge, period_end
from service.domain.endpoints import find_endpoint
from service.domain.jobs import Job, Outcome
from service.domain.pricing import PriceTable, Quote, estimate, settle, size_for, usd
from service.domain.schemas import AspectRatio, TextToVideoInput, validate_input
from service.domain.tenants import iso
from service.metrics import Metrics
from service.redis_client import load_script

log = structlog.get_logger(__name__)


class ProbeMode(StrEnum):
    """When to read the produced video's size from its MP4 header: only for ``aspect_ratio: auto`` (whose size is
    otherwise unknown), always (to verify explicit ratios too), or never."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


class BudgetLedger:
    def __init__(  # noqa: PLR0913 - collaborators and knobs, all explicit
        self,
        redis: Redis,
        *,
        prices: PriceTable,
        probe: MediaProbe | None,
        probe_mode: ProbeMode,
        ledger_retention_seconds: int,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self.prices = prices
        self._probe = probe
        self._probe_mode = probe_mode
        self._retention = ledger_retention_seconds
        self._metrics = metrics
        self._clock = clock
        self._settle = load_script(redis, "service.budgets", "settle.lua")
        self._release = load_script(redis, "service.budgets", "release.lua")
        self._tracked: set[str] = set()

    async def track_tenant(self, tenant_id: str) -> None:
        """Put a tenant that reserved on the reconciler's work list (once per process: the set only grows)."""
        if tenant_id not in self._tracked:
            await self._redis.sadd(keys.budget_tenants(), tenant_id)
            self._tracked.add(tenant_id)

    def estimate(self, data: TextToVideoInput) -> Quote:
        return estimate(data, self.prices)

    async def finish(self, job: Job) -> None:
        """Book a finished job: settle it if it succeeded, release its reservation otherwise. Idempotent."""
        if job.outcome is Outcome.OK:
            await self.settle(job)
        else:
            await self.release(job.tenant_id, job.request_id)

    async def settle(self, job: Job) -> bool:
        reservation = await self._reservation(job.tenant_id, job.request_id)
        if reservation is None:
            return False
        reserved, period = reservation
        data = _input_of(job)
        quote, source = await self._actual(job, data)
        cost = quote.cost_micros
        if cost > reserved:
            # Never more than the reservation, or spent could pass the limit: prices are configuration, and the
            # replica settling may price differently from the one that reserved (a rolling deploy).
            log.warning("budget_settle_capped", request_id=job.request_id, cost_micros=cost, reserved_micros=reserved)
            cost = reserved
        charge = Charge(
            request_id=job.request_id,
            endpoint_id=job.endpoint_id,
            resolution=data.resolution.value,
            aspect_ratio=data.aspect_ratio.value,
            duration=data.duration_seconds,
            audio=data.generate_audio,
            width=quote.width,
            height=quote.height,
            frames=quote.frames,
            tokens=quote.tokens,
            cost_micros=cost,
            cost_usd=usd(cost),
            estimate_micros=reserved,
            size_source=source,
            settled_at=iso(self._clock()),
        )
        tid = job.tenant_id
        charged = await self._settle(
            keys=[
                keys.budget(tid, period),
                keys.reservations(tid),
                keys.reservation_expiry(tid),
                keys.charges(tid, period),
                keys.charges_index(tid, period),
                keys.breakdown(tid, period),
            ],
            args=[
                job.request_id,
                cost,
                json.dumps(asdict(charge)),
                int(self._clock() * 1000),
                breakdown_field(job.endpoint_id, data.resolution.value, audio=data.generate_audio),
                self._retention,
                period,
                self._kept_until_ms(period),
            ],
        )
        if int(charged) == 1:
            self._metrics.charges_micros.labels(tenant=tid, endpoint=job.endpoint_id).inc(cost)
            log.info(
                "budget_settled",
                tenant_id=tid,
                request_id=job.request_id,
                cost_micros=cost,
                estimate_micros=reserved,
                size_source=source,
            )
        return int(charged) == 1

    async def release(self, tenant_id: str, request_id: str) -> int:
        period = await self._reservation_period(tenant_id, request_id)
        if period is None:
            return 0
        released = int(
            await self._release(
                keys=[keys.budget(tenant_id, period), keys.reservations(tenant_id), keys.reservation_expiry(tenant_id)],
                args=[request_id, period, self._retention, self._kept_until_ms(period)],
            )
        )
        if released:
            log.info("budget_released", tenant_id=tenant_id, request_id=request_id, released_micros=released)
        return released

    async def reconcile(self, load_job: Callable[[str], Awaitable[Job | None]], *, extend_seconds: float) -> int:
        """Resolve every reservation past its expiry. Returns how many were settled or released."""
        now_ms = int(self._clock() * 1000)
        resolved = 0
        for tenant_id in sorted(cast("set[str]", await self._redis.smembers(keys.budget_tenants()))):
            expired = cast(
                "list[str]", await self._redis.zrangebyscore(keys.reservation_expiry(tenant_id), "-inf", now_ms)
            )
            for request_id in expired:
                job = await load_job(request_id)
                if job is not None and not job.done:  # still followed by the tracker: keep holding the money
                    await self._redis.zadd(
                        keys.reservation_expiry(tenant_id), {request_id: now_ms + int(extend_seconds * 1000)}, xx=True
                    )
                    continue
                if job is not None and job.outcome is Outcome.OK:
                    done = await self.settle(job)
                else:
                    done = await self.release(tenant_id, request_id) > 0
                resolved += int(done)
                self._metrics.reservations_reconciled.labels(
                    outcome="lost" if job is None else ("settled" if job.outcome is Outcome.OK else "released")
                ).inc()
        return resolved

    async def forget_tenant(self, tenant_id: str) -> int:
        """A deleted tenant's money state goes with it, so that a tenant created again under its id starts from
        zero: its open reservations (a job of it still running is then settled nowhere, and logged), and every
        period's totals, charges, breakdown and alerts. Returns how many reservations were open."""
        open_ = cast("dict[str, str]", await self._redis.hgetall(keys.reservations(tenant_id)))
        if open_:
            held = sum(int(value.partition(":")[0]) for value in open_.values())
            log.warning("budget_reservations_forgotten", tenant_id=tenant_id, count=len(open_), reserved_micros=held)
        prefix = keys.tenant(tenant_id)  # tenant ids are [a-z0-9_-]: nothing in them is special to SCAN
        doomed = [keys.reservations(tenant_id), keys.reservation_expiry(tenant_id)]
        for kind in ("budget", "charges", "breakdown", "alerts"):  # charges:<period>:idx too
            doomed += [key async for key in self._redis.scan_iter(match=f"{prefix}:{kind}:*", count=500)]
        await self._redis.delete(*doomed)  # one slot: every key of a tenant carries its hash tag
        return len(open_)

    async def _reservation_period(self, tenant_id: str, request_id: str) -> str | None:
        reservation = await self._reservation(tenant_id, request_id)
        return None if reservation is None else reservation[1]

    async def _reservation(self, tenant_id: str, request_id: str) -> tuple[int, str] | None:
        """An open reservation's amount and period id (``<micros>:<period>``, as admit.lua writes it)."""
        raw = await self._redis.hget(keys.reservations(tenant_id), request_id)
        if not raw:
            return None
        amount, _, period = str(raw).partition(":")
        return int(amount), period

    def _kept_until_ms(self, period: str) -> int:
        """Until when a period's totals are kept: its end plus the retention (settle.lua never keeps them for less
        than the retention from now); 0 for ``total`` (a lifetime budget is never forgotten) or a retention of 0."""
        end = period_end(period)
        if end is None or self._retention <= 0:
            return 0
        return int((end.timestamp() + self._retention) * 1000)

    async def _actual(self, job: Job, data: TextToVideoInput) -> tuple[Quote, str]:
        """The settlement quote and where its size came from: the MP4 header, the size table, or the estimate."""
        auto = data.aspect_ratio is AspectRatio.AUTO
        if self._probe is not None and (
            self._probe_mode is ProbeMode.ALWAYS or (self._probe_mode is ProbeMode.AUTO and auto)
        ):
            size = await self._probe.produced_size(job.result)
            if size is not None:
                return settle(data, self.prices, produced_size=size), "probe"
        if not auto:
            return settle(data, self.prices, produced_size=size_for(data.resolution, data.aspect_ratio)), "table"
        return settle(data, self.prices, produced_size=None), "estimate"


def breakdown_field(endpoint_id: str, resolution: str, *, audio: bool) -> str:
    return f"{endpoint_id}|{resolution}|{'audio' if audio else 'silent'}"


def _input_of(job: Job) -> TextToVideoInput:
    endpoint = find_endpoint(job.endpoint_id)
    if endpoint is None:  # pragma: no cover - records are only created for known endpoints
        raise ValueError(f"unknown endpoint in job record: {job.endpoint_id}")
    return validate_input(endpoint, job.input)
