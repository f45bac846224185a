"""Lease schedules: a Redis ZSET of ids scored by when each is next due, claimed as leases (``lua/lease_claim.lua``).

The tracker's due jobs and the webhook deliveries are both one. Claiming an entry re-scores it to "now + lease", so
work whose replica dies becomes due again when the lease runs out, and another replica takes it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from service.redis_client import load_script

MAX_ERROR_WAIT_SECONDS = 1.0


class LeaseSchedule:
    def __init__(self, redis: Redis, key: str) -> None:
        self._redis = redis
        self._key = key
        self._claim = load_script(redis, "service", "lease_claim.lua")

    async def schedule(self, member: str, at_ms: int) -> None:
        await self._redis.zadd(self._key, {member: at_ms})

    def schedule_in(self, pipe: Pipeline, member: str, at_ms: int) -> None:
        pipe.zadd(self._key, {member: at_ms})

    async def claim(self, now_ms: int, *, lease_ms: int, limit: int) -> list[str]:
        claimed: list[str] = await self._claim(keys=[self._key], args=[now_ms, lease_ms, limit])
        return claimed

    async def finish(self, member: str) -> None:
        await self._redis.zrem(self._key, member)

    async def size(self) -> int:
        return int(await self._redis.zcard(self._key))

    async def oldest_ms(self) -> int | None:
        """The earliest due time scheduled, or None when nothing is."""
        first = await self._redis.zrange(self._key, 0, 0, withscores=True)
        return int(first[0][1]) if first else None


class LeaseWorker:
    """Runs ``handle`` on every due member of a lease schedule, at most ``concurrency`` at once, until stopped.

    ``handle`` must not raise (each one logs and counts its own failures): the lease brings a member back if its
    handling dies with its replica. ``between`` (optional) runs once per round, for gauges. ``on_error`` is called
    inside ``except`` when a round fails (see :class:`service.background.Survivor`); the loop then waits longer
    after each consecutive failure, up to a second, instead of retrying a dead Redis every tick.
    """

    def __init__(  # noqa: PLR0913 - the loop's knobs, all explicit
        self,
        schedule: LeaseSchedule,
        handle: Callable[[str], Coroutine[Any, Any, None]],
        *,
        concurrency: int,
        batch: int,
        lease_seconds: float,
        tick_seconds: float,
        on_error: Callable[[str], None],
        between: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._schedule = schedule
        self._handle = handle
        self._concurrency = concurrency
        self._batch = batch
        self._lease_ms = int(lease_seconds * 1000)
        self._tick = tick_seconds
        self._on_error = on_error
        self._between = between
        self._clock = clock
        self._inflight: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and handle due members until ``stop`` is set; survives Redis outages. Waits for its handlers."""
        failures = 0
        while not stop.is_set():
            try:
                claimed = await self.claim_and_start()
                if self._between is not None:
                    await self._between()
                failures = 0
            except Exception:  # noqa: BLE001 - the loop must survive anything; logged and counted by on_error
                self._on_error("lease_claim_failed")
                claimed, failures = 0, failures + 1
            if not claimed:
                wait = min(MAX_ERROR_WAIT_SECONDS, self._tick * 2**failures) if failures else self._tick
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(wait, self._tick))
        await self.drain()

    async def claim_and_start(self) -> int:
        """Claim as many due members as there are free slots and start handling them. Returns how many."""
        free = self._concurrency - len(self._inflight)
        if free <= 0:
            return 0
        members = await self._schedule.claim(
            int(self._clock() * 1000), lease_ms=self._lease_ms, limit=min(free, self._batch)
        )
        for member in members:
            task = asyncio.create_task(self._handle(member))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return len(members)

    async def drain(self) -> None:
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
