"""A lease worker told to stop lets its handlers finish for a grace period, cancels the rest and hands their claims
back due now (``service/lua/lease_release.lua``), but only the claims it still holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from redis.asyncio import Redis

from service.lease_schedule import Claim, LeaseSchedule
from service.schedule import Handover, LeaseWorker
from tests.support.clocks import ManualClock
from tests.support.redis_cluster import MODES
from tests.support.waiting import eventually

REDIS_MODES = MODES
KEY = "gw:v1:test:due"
LEASE_SECONDS = 30


class Handlers:
    """Handlers that record what they were given and do what each test says with it."""

    def __init__(self, act: Callable[[str], Coroutine[Any, Any, None]]) -> None:
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self._act = act

    def count(self, n: int) -> Callable[[], Coroutine[Any, Any, bool]]:
        """A probe for ``eventually``: ``n`` handlers have started."""

        async def started() -> bool:
            return len(self.started) == n

        return started

    async def __call__(self, member: str) -> None:
        self.started.append(member)
        try:
            await self._act(member)
        except asyncio.CancelledError:
            self.cancelled.append(member)
            raise


def _worker(schedule: LeaseSchedule, handlers: Handlers, clock: ManualClock, errors: list[str]) -> LeaseWorker:
    return LeaseWorker(
        schedule,
        handlers,
        concurrency=10,
        batch=10,
        lease_seconds=LEASE_SECONDS,
        tick_seconds=0.01,
        on_error=errors.append,
        grace_seconds=0.5,
        clock=clock,
    )


async def _forever(member: str) -> None:
    del member
    await asyncio.Event().wait()


async def _score(redis: Redis, member: str) -> float | None:
    score = await redis.zscore(KEY, member)
    return None if score is None else float(score)


async def test_work_in_flight_finishes_within_the_grace_and_what_is_cut_short_is_due_again_at_once(
    redis_client: Redis,
) -> None:
    schedule, clock = LeaseSchedule(redis_client, KEY), ManualClock(2.0)
    errors: list[str] = []
    stop = asyncio.Event()

    async def act(member: str) -> None:
        if member == "quick":  # a step still at work when the stop comes, done well within the grace period
            await stop.wait()
            await asyncio.sleep(0.05)
            await schedule.finish(member)
        else:
            await _forever(member)

    handlers = Handlers(act)
    await schedule.schedule("quick", 1_000)
    await schedule.schedule("stuck", 1_500)
    worker = _worker(schedule, handlers, clock, errors)
    running = asyncio.create_task(worker.run(stop))
    await eventually(handlers.count(2))
    assert await _score(redis_client, "stuck") == (2 + LEASE_SECONDS) * 1000, "leased"

    stop.set()
    await running
    clock.advance(1)
    assert await worker.hand_back() == Handover(finished=1, handed_back=1, not_held=0)
    assert handlers.cancelled == ["stuck"]
    assert await _score(redis_client, "stuck") == 3_000, "due now: another replica takes it without waiting"
    assert await _score(redis_client, "quick") is None
    assert await worker.hand_back() == Handover(finished=1), "handed back once"
    assert errors == []


async def test_an_entry_claimed_elsewhere_after_the_lease_ran_out_is_never_taken_back(redis_client: Redis) -> None:
    schedule, clock = LeaseSchedule(redis_client, KEY), ManualClock(2.0)
    errors: list[str] = []
    handlers = Handlers(_forever)
    await schedule.schedule("job", 1_000)
    worker, stop = _worker(schedule, handlers, clock, errors), asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await eventually(handlers.count(1))
    clock.advance(LEASE_SECONDS + 1)  # this replica stalled past its lease; another one claims the job
    other = LeaseSchedule(redis_client, KEY)
    assert await other.claim(33_000, lease_ms=60_000, limit=10) == [Claim("job", 32_000, 93_000)]

    stop.set()
    await running
    assert await worker.hand_back() == Handover(finished=0, handed_back=0, not_held=1)
    assert await _score(redis_client, "job") == 93_000, "the other replica's lease stands"


async def test_an_entry_its_own_step_rescheduled_is_left_where_the_step_put_it(redis_client: Redis) -> None:
    schedule, clock = LeaseSchedule(redis_client, KEY), ManualClock(2.0)
    errors: list[str] = []

    async def act(member: str) -> None:
        await schedule.schedule(member, 50_000)  # the step's own next poll, then it hangs until cancelled
        await _forever(member)

    handlers = Handlers(act)
    await schedule.schedule("job", 1_000)
    worker, stop = _worker(schedule, handlers, clock, errors), asyncio.Event()
    running = asyncio.create_task(worker.run(stop))

    async def rescheduled() -> bool:
        return await _score(redis_client, "job") == 50_000

    await eventually(rescheduled)
    stop.set()
    await running
    assert await worker.hand_back() == Handover(finished=0, handed_back=0, not_held=1)
    assert await _score(redis_client, "job") == 50_000


async def test_a_worker_that_had_nothing_in_flight_hands_back_nothing(redis_client: Redis) -> None:
    schedule, clock = LeaseSchedule(redis_client, KEY), ManualClock(2.0)
    errors: list[str] = []
    worker, stop = _worker(schedule, Handlers(_forever), clock, errors), asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    stop.set()
    await running
    assert await worker.hand_back() == Handover()
