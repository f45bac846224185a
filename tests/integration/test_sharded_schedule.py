"""Sharded lease schedules (``service/lease_schedule.py``) on one Redis and on a cluster: every member lives in the
shard of its id, claims serve every shard in turn and never take more than asked, and what other shard counts left
behind is adopted without losing an entry or its due time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service import keys
from service.lease_schedule import LeaseSchedule, PartialClaimError
from service.schedule import LeaseWorker
from tests.support.clocks import ManualClock
from tests.support.redis_cluster import MODES
from tests.support.waiting import eventually

REDIS_MODES = MODES
LEASE_MS = 30_000


def _schedule(redis: Redis, shards: int) -> LeaseSchedule:
    return LeaseSchedule(redis, keys.tracker_due_shards(shards), shards_of=keys.tracker_due_shards)


def _worker(
    schedule: LeaseSchedule,
    handle: Callable[[str], Coroutine[Any, Any, None]],
    clock: ManualClock,
    errors: list[str],
    *,
    slots: int,
) -> LeaseWorker:
    return LeaseWorker(
        schedule,
        handle,
        concurrency=slots,
        batch=slots,
        lease_seconds=30,
        tick_seconds=0.01,
        on_error=errors.append,
        clock=clock,
    )


def _ids(count: int) -> list[str]:
    return [f"00000000-0000-4000-8000-{n:012d}" for n in range(count)]


async def test_each_member_is_kept_in_the_shard_of_its_id(redis_client: Redis) -> None:
    schedule = _schedule(redis_client, 4)
    for n, member in enumerate(_ids(40)):
        await schedule.schedule(member, 1000 + n)

    for member in _ids(40):
        shard_key = keys.tracker_due_shards(4)[keys.shard_index(member, 4)]
        assert await redis_client.zscore(shard_key, member) is not None
    sizes = [await redis_client.zcard(key) for key in keys.tracker_due_shards(4)]
    assert sum(sizes) == 40
    assert all(sizes), f"every shard holds some of 40 ids: {sizes}"
    assert await schedule.size() == 40
    assert await schedule.oldest_ms() == 1000


async def test_claims_take_from_every_shard_once_each_and_never_more_than_the_limit(redis_client: Redis) -> None:
    schedule = _schedule(redis_client, 4)
    for member in _ids(30):
        await schedule.schedule(member, 1000)

    claimed: list[str] = []
    for _ in range(30):
        claims = await schedule.claim(2000, lease_ms=LEASE_MS, limit=3)
        assert len(claims) <= 3
        claimed += [claim.member for claim in claims]
        assert all(claim.lease_until_ms == 2000 + LEASE_MS for claim in claims)
    assert sorted(claimed) == _ids(30), "every member claimed exactly once while leased"
    assert await schedule.claim(2000, lease_ms=LEASE_MS, limit=10) == []
    assert len(await schedule.claim(2000 + LEASE_MS, lease_ms=LEASE_MS, limit=100)) == 30, "due again"


async def test_a_limit_below_the_shard_count_serves_every_shard_in_turn(redis_client: Redis) -> None:
    schedule = _schedule(redis_client, 8)
    members = {keys.shard_index(member, 8): member for member in _ids(200)}  # one member in each shard
    assert len(members) == 8
    for member in members.values():
        await schedule.schedule(member, 1000)

    claimed = [claim.member for _ in range(8) for claim in await schedule.claim(2000, lease_ms=LEASE_MS, limit=1)]

    assert sorted(claimed) == sorted(members.values())


async def test_release_gives_back_claims_of_every_shard(redis_client: Redis) -> None:
    schedule = _schedule(redis_client, 4)
    for member in _ids(12):
        await schedule.schedule(member, 1000)
    claims = await schedule.claim(2000, lease_ms=LEASE_MS, limit=12)
    assert len(claims) == 12

    assert await schedule.release(claims, 2500) == 12
    assert {await schedule.due_at(member) for member in _ids(12)} == {2500}
    assert await schedule.release(claims, 2600) == 0, "no longer held: the lease scores are gone"


async def test_entries_of_the_unsharded_key_and_of_another_shard_count_are_adopted(redis_client: Redis) -> None:
    legacy, other = _schedule(redis_client, 1), _schedule(redis_client, 3)
    await legacy.schedule("legacy-only", 1000)
    await legacy.schedule("in-both", 900)
    await other.schedule("other-count", 1200)
    await other.adopt_strays()  # records count 3 (and moves the legacy entries into its own shards)
    await other.schedule("other-count-late", 1300)
    schedule = _schedule(redis_client, 4)
    await schedule.schedule("in-both", 5000)  # already here, due later: the earlier due time wins
    await legacy.schedule("legacy-late", 1100)  # an older replica still writing the one-key schedule

    assert await schedule.adopt_strays() == 5

    for member, due in [
        ("legacy-only", 1000),
        ("in-both", 900),
        ("other-count", 1200),
        ("other-count-late", 1300),
        ("legacy-late", 1100),
    ]:
        assert await schedule.due_at(member) == due, member
    assert await legacy.size() == 0
    assert await other.size() == 0
    assert await schedule.size() == 5
    assert await redis_client.smembers(keys.shard_count_record()) == {"3", "4"}
    assert await schedule.adopt_strays() == 0


async def test_a_worker_adopts_strays_as_it_starts_and_handles_them(redis_client: Redis) -> None:
    await _schedule(redis_client, 1).schedule("left-by-an-older-version", 1000)
    schedule, clock = _schedule(redis_client, 4), ManualClock(2.0)
    handled: list[str] = []

    async def handle(member: str) -> None:
        handled.append(member)
        await schedule.finish(member)

    errors: list[str] = []
    worker = _worker(schedule, handle, clock, errors, slots=4)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))

    async def handled_it() -> bool:
        return handled == ["left-by-an-older-version"]

    await eventually(handled_it)
    stop.set()
    await running
    assert errors == []
    assert await schedule.size() == 0


async def test_a_failing_shard_does_not_strand_the_claims_the_others_gave(redis_client: Redis) -> None:
    schedule = _schedule(redis_client, 4)
    members = {keys.shard_index(member, 4): member for member in _ids(100)}
    broken = keys.tracker_due_shards(4)[0]
    for shard, member in members.items():
        if shard:
            await schedule.schedule(member, 1000)
    await redis_client.set(broken, "not a zset")  # WRONGTYPE for that shard's claims

    with pytest.raises(PartialClaimError) as failed:
        await schedule.claim(2000, lease_ms=LEASE_MS, limit=8)
    assert sorted(claim.member for claim in failed.value.claims) == sorted(members[shard] for shard in (1, 2, 3))

    clock, handled, errors = ManualClock(2.0), list[str](), list[str]()

    async def handle(member: str) -> None:
        handled.append(member)

    for member in (members[1], members[2], members[3]):
        await schedule.schedule(member, 1000)
    worker = _worker(schedule, handle, clock, errors, slots=8)
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await worker.claim_and_start()
    await worker.drain()
    assert sorted(handled) == sorted(members[shard] for shard in (1, 2, 3)), "handled although a shard failed"
    await redis_client.delete(broken)
