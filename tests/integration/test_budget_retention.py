"""How long a budget period's totals are kept (service/budgets/lua/settle.lua, release.lua, admit.lua): until the
period's end plus GATEWAY_LEDGER_RETENTION_SECONDS, never while a reservation is open in it, and for a lifetime
(``total``) budget forever; and a settlement never charges more than was reserved, whatever the settling replica's
prices. Expiry times are read with PEXPIRETIME, on a clock set after the real one (no waiting)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from redis.asyncio import Redis

from service import keys
from service.budgets.ledger import BudgetLedger, ProbeMode
from service.domain.budgets import BudgetPeriod, period_window
from service.domain.endpoints import TEXT_TO_VIDEO
from service.domain.jobs import Job, JobMode, JobState, Outcome
from service.domain.policy import TenantPolicy
from service.domain.pricing import PriceTable
from service.domain.schemas import validate_input
from service.metrics import Metrics
from service.tenants.admission import Admission, Reservation
from tests.support.clocks import ManualClock
from tests.support.endpoints import DEFAULTS
from tests.support.redis_cluster import MODES

REDIS_MODES = MODES
NOW = datetime(2031, 3, 10, 12, tzinfo=UTC).timestamp()  # after the real clock: expiry times stay in the future
MARCH_END_MS = int(datetime(2031, 4, 1, tzinfo=UTC).timestamp() * 1000)
RETENTION = 30 * 24 * 3600
INPUT = {"prompt": "x", **DEFAULTS}


def _ledger(redis: Redis, clock: ManualClock, prices: PriceTable | None = None) -> BudgetLedger:
    return BudgetLedger(
        redis,
        prices=prices or PriceTable(),
        probe=None,
        probe_mode=ProbeMode.NEVER,
        ledger_retention_seconds=RETENTION,
        metrics=Metrics(),
        clock=clock,
    )


def _job(rid: str) -> Job:
    return Job(
        request_id=rid,
        tenant_id="acme",
        endpoint_id=TEXT_TO_VIDEO.id,
        mode=JobMode.QUEUE,
        input=INPUT,
        created_at=NOW,
        state=JobState.COMPLETED,
        outcome=Outcome.OK,
        result={"video": {"url": "x"}, "seed": 1},
    )


async def _reserve(redis: Redis, ledger: BudgetLedger, rid: str, period: BudgetPeriod, limit: int = 10_000_000) -> int:
    estimate = ledger.estimate(validate_input(TEXT_TO_VIDEO, INPUT)).cost_micros
    await Admission(redis, lease_seconds=120, clock=lambda: NOW).admit(
        "acme",
        TenantPolicy(),
        rid,
        lease_seconds=120,
        reservation=Reservation(
            estimate_micros=estimate,
            period=period_window(period, NOW),
            limit_micros=limit,
            expires_at_ms=int((NOW + 3600) * 1000),
        ),
    )
    return estimate


def _keys(period: BudgetPeriod) -> tuple[str, list[str]]:
    pid = period_window(period, NOW).id
    return keys.budget("acme", pid), [
        keys.charges("acme", pid),
        keys.charges_index("acme", pid),
        keys.breakdown("acme", pid),
    ]


async def test_a_periods_totals_and_ledger_are_kept_until_its_end_plus_the_retention(redis_client: Redis) -> None:
    ledger = _ledger(redis_client, ManualClock(NOW))
    await _reserve(redis_client, ledger, "r1", BudgetPeriod.MONTH)
    assert await ledger.settle(_job("r1"))
    totals, history = _keys(BudgetPeriod.MONTH)
    expected = MARCH_END_MS + RETENTION * 1000
    assert [await redis_client.pexpiretime(key) for key in (totals, *history)] == [expected] * 4


async def test_a_lifetime_budgets_totals_never_expire(redis_client: Redis) -> None:
    ledger = _ledger(redis_client, ManualClock(NOW))
    await _reserve(redis_client, ledger, "r1", BudgetPeriod.TOTAL)
    assert await ledger.settle(_job("r1"))
    totals, history = _keys(BudgetPeriod.TOTAL)
    assert await redis_client.pttl(totals) == -1, "a spent lifetime budget is never forgotten"
    for key in history:  # its charges are kept for the retention after the last one
        assert 0 < await redis_client.ttl(key) <= RETENTION


async def test_the_totals_never_expire_while_a_reservation_is_open(redis_client: Redis) -> None:
    ledger = _ledger(redis_client, ManualClock(NOW))
    totals, _ = _keys(BudgetPeriod.MONTH)
    await _reserve(redis_client, ledger, "r1", BudgetPeriod.MONTH)
    await _reserve(redis_client, ledger, "r2", BudgetPeriod.MONTH)
    assert await ledger.settle(_job("r1"))
    assert await redis_client.pttl(totals) == -1, "r2 is still open"
    assert await ledger.release("acme", "r2") > 0
    assert await redis_client.pexpiretime(totals) == MARCH_END_MS + RETENTION * 1000, "none is open any more"
    await _reserve(redis_client, ledger, "r3", BudgetPeriod.MONTH)
    assert await redis_client.pttl(totals) == -1, "a new reservation keeps them again"
    assert await redis_client.hget(totals, "reserved") == str(
        ledger.estimate(validate_input(TEXT_TO_VIDEO, INPUT)).cost_micros
    )


async def test_a_period_settled_late_is_kept_for_the_retention_from_now(redis_client: Redis) -> None:
    """Redis's clock decides the floor: totals settled after their period's end plus retention are not dropped at
    once (the ledger's clock here is years before the real one)."""
    past = datetime(2020, 1, 15, tzinfo=UTC).timestamp()
    ledger = _ledger(redis_client, ManualClock(past))
    estimate = ledger.estimate(validate_input(TEXT_TO_VIDEO, INPUT)).cost_micros
    window = period_window(BudgetPeriod.MONTH, past)
    await Admission(redis_client, lease_seconds=120, clock=lambda: past).admit(
        "acme",
        TenantPolicy(),
        "r1",
        lease_seconds=120,
        reservation=Reservation(estimate_micros=estimate, period=window, limit_micros=None, expires_at_ms=0),
    )
    assert await ledger.settle(replace(_job("r1"), created_at=past))
    assert await redis_client.ttl(keys.budget("acme", window.id)) > RETENTION - 60


async def test_a_settlement_never_charges_more_than_was_reserved(redis_client: Redis) -> None:
    """A rolling deploy of a price change: the replica that reserved used the old price, the settling one the
    new. The charge is capped at the reservation, so spent + reserved stays within the limit."""
    clock = ManualClock(NOW)
    old, new = (
        _ledger(redis_client, clock),
        _ledger(redis_client, clock, PriceTable(audio_micros_per_million_tokens=4_800_000)),
    )
    reserved = await _reserve(redis_client, old, "r1", BudgetPeriod.MONTH, limit=300_000)
    assert await new.settle(_job("r1"))
    totals, _ = _keys(BudgetPeriod.MONTH)
    assert await redis_client.hmget(totals, ["spent", "reserved"]) == [str(reserved), "0"]
    raw = await redis_client.hget(keys.charges("acme", period_window(BudgetPeriod.MONTH, NOW).id), "r1")
    assert raw is not None
    charge = json.loads(raw)
    assert (charge["cost_micros"], charge["estimate_micros"]) == (reserved, reserved)
