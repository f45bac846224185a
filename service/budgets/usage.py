"""Reading budgets: usage per period with its breakdown, the ledger of settled charges, per-tenant gauges, and
threshold alerts (soft limit, 80 / 90 / 100 % of the limit), each fired at most once per period."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, cast

import structlog
from redis.asyncio import Redis

from service import keys
from service.domain.budgets import Budget, BudgetPeriod, PeriodWindow, crossed_alerts, period_window
from service.domain.paging import Cursor
from service.domain.pricing import usd
from service.domain.tenants import Tenant, iso
from service.metrics import Metrics
from service.paging import page_below

log = structlog.get_logger(__name__)
UNLIMITED_PERIOD = BudgetPeriod.MONTH  # tenants without a budget still get monthly usage


def tenant_period(tenant: Tenant, now: float) -> PeriodWindow:
    return period_window(tenant.budget.period if tenant.budget else UNLIMITED_PERIOD, now)


class BudgetReader:
    def __init__(self, redis: Redis, *, metrics: Metrics, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._metrics = metrics
        self._clock = clock

    async def usage(self, tenant: Tenant) -> dict[str, Any]:
        window = tenant_period(tenant, self._clock())
        spent, reserved = await self._amounts(tenant.id, window.id)
        budget = tenant.budget
        limit = budget.limit_micros if budget else None
        remaining = None if limit is None else max(0, limit - spent - reserved)
        self._gauges(tenant.id, spent, reserved, remaining, limit)
        start = window.start.timestamp() if window.start else tenant.created_at
        return {
            "tenant_id": tenant.id,
            "period": budget.period.value if budget else UNLIMITED_PERIOD.value,
            "period_id": window.id,
            "period_start": iso(start),
            "period_end": iso(window.end.timestamp()) if window.end else None,
            "limit_micros": limit,
            "soft_limit_micros": budget.soft_limit_micros if budget else None,
            "spent_micros": spent,
            "reserved_micros": reserved,
            "remaining_micros": remaining,
            "limit_usd": None if limit is None else usd(limit),
            "spent_usd": usd(spent),
            "reserved_usd": usd(reserved),
            "remaining_usd": None if remaining is None else usd(remaining),
            "breakdown": await self._breakdown(tenant.id, window.id),
        }

    async def charges(
        self, tenant: Tenant, *, period_id: str | None, limit: int, before: Cursor | None
    ) -> tuple[list[dict[str, Any]], str | None, str]:
        """One page of the period's settled charges, newest first, and the cursor of the next page."""
        period = period_id or tenant_period(tenant, self._clock()).id
        rows, cursor = await page_below(self._redis, keys.charges_index(tenant.id, period), limit=limit, before=before)
        if not rows:
            return [], None, period
        raws = cast("list[str | None]", await self._redis.hmget(keys.charges(tenant.id, period), [r for r, _ in rows]))
        entries = [json.loads(raw) for raw in raws if raw]
        return entries, cursor, period

    async def after_reservation(
        self, tenant: Tenant, window: PeriodWindow, *, committed_before: int, committed_after: int
    ) -> None:
        """Fire each alert whose threshold the committed spend (spent + reserved) just crossed, once per period."""
        budget: Budget | None = tenant.budget
        if budget is None:
            return
        self._gauges(tenant.id, None, None, max(0, budget.limit_micros - committed_after), budget.limit_micros)
        for alert in crossed_alerts(budget, committed_before, committed_after):
            first = await self._redis.hsetnx(keys.budget_alerts(tenant.id, window.id), alert, repr(self._clock()))
            if first:
                self._metrics.budget_alerts.labels(tenant=tenant.id, alert=alert).inc()
                log.warning(
                    "budget_alert",
                    tenant_id=tenant.id,
                    alert=alert,
                    period_id=window.id,
                    committed_micros=committed_after,
                    limit_micros=budget.limit_micros,
                    soft_limit_micros=budget.soft_limit_micros,
                )

    async def refresh_gauges(self, tenant: Tenant) -> None:
        window = tenant_period(tenant, self._clock())
        spent, reserved = await self._amounts(tenant.id, window.id)
        limit = tenant.budget.limit_micros if tenant.budget else None
        remaining = None if limit is None else max(0, limit - spent - reserved)
        self._gauges(tenant.id, spent, reserved, remaining, limit)

    async def _amounts(self, tenant_id: str, period_id: str) -> tuple[int, int]:
        spent, reserved = await self._redis.hmget(keys.budget(tenant_id, period_id), ["spent", "reserved"])
        return int(spent or 0), int(reserved or 0)

    async def _breakdown(self, tenant_id: str, period_id: str) -> list[dict[str, Any]]:
        raw = cast("dict[str, str]", await self._redis.hgetall(keys.breakdown(tenant_id, period_id)))
        rows = []
        for field, value in sorted(raw.items()):
            if field.endswith("|count"):
                continue
            endpoint_id, resolution, audio = field.split("|")
            rows.append(
                {
                    "endpoint_id": endpoint_id,
                    "resolution": resolution,
                    "audio": audio == "audio",
                    "requests": int(raw.get(f"{field}|count", 0)),
                    "cost_micros": int(value),
                    "cost_usd": usd(int(value)),
                }
            )
        return rows

    def _gauges(
        self, tenant_id: str, spent: int | None, reserved: int | None, remaining: int | None, limit: int | None
    ) -> None:
        if limit is not None:
            self._metrics.budget_limit.labels(tenant=tenant_id).set(limit)
        if spent is not None:
            self._metrics.budget_spent.labels(tenant=tenant_id).set(spent)
        if reserved is not None:
            self._metrics.budget_reserved.labels(tenant=tenant_id).set(reserved)
        if remaining is not None:
            self._metrics.budget_remaining.labels(tenant=tenant_id).set(remaining)
