"""Reservations, settlement, release and reconciliation against real Redis, with an injected clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from service import keys
from service.budgets.ledger import BudgetLedger, ProbeMode
from service.domain.budgets import BudgetPeriod, period_window
from service.domain.endpoints import TEXT_TO_VIDEO
from service.domain.jobs import Job, JobMode, JobState, Outcome
from service.domain.policy import TenantPolicy
from service.domain.pricing import PriceTable
from service.errors import BudgetExceeded
from service.metrics import Metrics
from service.tenants.admission import Admission, Reservation
from tests.support.clocks import ManualClock
from tests.support.endpoints import DEFAULTS
from tests.support.redis_cluster import MODES

REDIS_MODES = MODES
NOW = 1_795_000_000.0
INPUT = {"prompt": "x", **DEFAULTS}
ESTIMATE, SETTLED = 261_360, 259_200


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def ledger(redis_client: Redis, clock: ManualClock) -> BudgetLedger:
    return BudgetLedger(
        redis_client,
        prices=PriceTable(),
        probe=None,
        probe_mode=ProbeMode.NEVER,
        ledger_retention_seconds=3600,
        metrics=Metrics(),
        clock=clock,
    )


async def _reserve(
    redis: Redis, clock: ManualClock, rid: str, *, limit: int | None = 10_000_000, ttl: float = 60.0
) -> None:
    admission = Admission(redis, lease_seconds=120, clock=clock)
    window = period_window(BudgetPeriod.MONTH, clock())
    await admission.admit(
        "acme",
        TenantPolicy(),
        rid,
        lease_seconds=120,
        reservation=Reservation(
            estimate_micros=ESTIMATE, period=window, limit_micros=limit, expires_at_ms=int((clock() + ttl) * 1000)
        ),
    )
    await redis.sadd(keys.budget_tenants(), "acme")


def _job(rid: str, outcome: Outcome | None) -> Job:
    state = JobState.IN_PROGRESS if outcome is None else JobState.COMPLETED
    return Job(
        request_id=rid,
        tenant_id="acme",
        endpoint_id=TEXT_TO_VIDEO.id,
        mode=JobMode.QUEUE,
        input=INPUT,
        created_at=NOW,
        state=state,
        outcome=outcome,
        result={"video": {"url": "x"}, "seed": 1},
    )


async def _amounts(redis: Redis) -> tuple[int, int]:
    spent, reserved = await redis.hmget(
        keys.budget("acme", period_window(BudgetPeriod.MONTH, NOW).id), ["spent", "reserved"]
    )
    return int(spent or 0), int(reserved or 0)


async def test_settling_twice_or_concurrently_charges_once(
    redis_client: Redis, clock: ManualClock, ledger: BudgetLedger
) -> None:
    await _reserve(redis_client, clock, "r1")
    outcomes = await asyncio.gather(*(ledger.settle(_job("r1", Outcome.OK)) for _ in range(20)))
    assert outcomes.count(True) == 1
    assert await _amounts(redis_client) == (SETTLED, 0)
    assert await ledger.release("acme", "r1") == 0, "a settled reservation is never released afterwards"
    assert await _amounts(redis_client) == (SETTLED, 0)


async def test_releasing_twice_releases_once(redis_client: Redis, clock: ManualClock, ledger: BudgetLedger) -> None:
    await _reserve(redis_client, clock, "r1")
    assert await _amounts(redis_client) == (0, ESTIMATE)
    released = await asyncio.gather(*(ledger.release("acme", "r1") for _ in range(10)))
    assert sorted(released) == [0] * 9 + [ESTIMATE]
    assert await _amounts(redis_client) == (0, 0)
    assert not await ledger.settle(_job("r1", Outcome.OK)), "a released reservation is never charged"


@pytest.mark.parametrize(
    ("job", "expected", "still_open"),
    [
        (None, (0, 0), False),  # lost: the job record is gone
        (_job("r1", Outcome.ERROR), (0, 0), False),
        (_job("r1", Outcome.CANCELLED), (0, 0), False),
        (_job("r1", Outcome.OK), (SETTLED, 0), False),  # the tracker died before settling it
        (_job("r1", None), (0, ESTIMATE), True),  # still running: keep holding the money
    ],
)
async def test_expired_reservations_are_reconciled_against_their_jobs(
    redis_client: Redis,
    clock: ManualClock,
    ledger: BudgetLedger,
    job: Job | None,
    expected: tuple[int, int],
    still_open: bool,
) -> None:
    await _reserve(redis_client, clock, "r1", ttl=60)

    async def load(_: str) -> Any:
        return job

    assert await ledger.reconcile(load, extend_seconds=600) == 0, "nothing has expired yet"
    clock.now += 61
    await ledger.reconcile(load, extend_seconds=600)
    assert await _amounts(redis_client) == expected
    assert (await redis_client.hexists(keys.reservations("acme"), "r1")) == still_open
    if still_open:
        expiry = await redis_client.zscore(keys.reservation_expiry("acme"), "r1")
        assert expiry == (clock.now + 600) * 1000, "a running job's reservation is extended, not released"


async def test_the_budget_check_counts_spent_and_reserved(
    redis_client: Redis, clock: ManualClock, ledger: BudgetLedger
) -> None:
    limit = 2 * ESTIMATE
    await _reserve(redis_client, clock, "r1", limit=limit)
    await ledger.settle(_job("r1", Outcome.OK))
    await _reserve(redis_client, clock, "r2", limit=limit)
    with pytest.raises(BudgetExceeded) as refused:
        await _reserve(redis_client, clock, "r3", limit=limit)
    assert refused.value.amounts["spent_micros"] == SETTLED
    assert refused.value.amounts["reserved_micros"] == ESTIMATE
    assert await _amounts(redis_client) == (SETTLED, ESTIMATE), "the refused request reserved nothing"
