"""The background loop that resolves expired reservations and refreshes per-tenant budget gauges.

Every replica runs it; a short Redis lock makes one of them do each round, and every step it takes is idempotent,
so two rounds overlapping (a lock that ran out mid-round) cannot charge or release anything twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio import Redis

from service import keys
from service.background import Survivor
from service.budgets.ledger import BudgetLedger
from service.budgets.usage import BudgetReader
from service.domain.jobs import Job
from service.metrics import Metrics
from service.tenants.store import TenantStore

log = structlog.get_logger(__name__)


class Reconciler:
    def __init__(  # noqa: PLR0913 - collaborators and knobs, all explicit
        self,
        redis: Redis,
        *,
        ledger: BudgetLedger,
        reader: BudgetReader,
        load_job: Callable[[str], Awaitable[Job | None]],
        tenants: TenantStore,
        metrics: Metrics,
        interval_seconds: float,
        extend_seconds: float,
    ) -> None:
        """``load_job`` reads a job record by request id (the job store's ``get``): this package does not know
        where jobs live, only what a finished one looks like."""
        self._redis = redis
        self._ledger = ledger
        self._reader = reader
        self._load_job = load_job
        self._survivor = Survivor("reconciler", metrics)
        self._tenants = tenants
        self._interval = interval_seconds
        self._extend = extend_seconds
        self._owner = uuid.uuid4().hex

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.round()
            except Exception:  # noqa: BLE001 - the loop must survive anything; logged and counted
                self._survivor.survived("budget_reconcile_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)

    async def round(self) -> int:
        """One reconciliation round if this replica gets the lock, then (every replica) the budget gauges read
        afresh from Redis, so a scrape of any replica shows every tenant's money as of the last interval. Returns how
        many reservations it resolved."""
        lock_ms = int(max(self._interval, 1.0) * 1000)
        resolved = 0
        if await self._redis.set(keys.reconcile_lock(), self._owner, nx=True, px=lock_ms):
            resolved = await self._ledger.reconcile(self._load_job, extend_seconds=self._extend)
            if resolved:
                log.info("budget_reconciled", resolved=resolved)
        await self.refresh_gauges()
        return resolved

    async def refresh_gauges(self) -> None:
        """Every tenant's budget gauges, read from Redis (each round, and at every scrape of ``/metrics``)."""
        for tenant in await self._tenants.list_tenants():
            await self._reader.refresh_gauges(tenant)
