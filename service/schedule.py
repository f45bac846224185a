"""The worker loop over a lease schedule (:mod:`service.lease_schedule`): claim what is due, handle it, repeat.

A replica that stops on purpose does not make the others wait for its leases: :meth:`LeaseWorker.hand_back` gives
back what it claimed and did not finish, due now (``lua/lease_release.lua``), but only what it still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from service.lease_schedule import Claim, LeaseSchedule, PartialClaimError

MAX_ERROR_WAIT_SECONDS = 1.0
DEFAULT_GRACE_SECONDS = 5.0
ADOPT_EVERY_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Handover:
    """What a stopped :class:`LeaseWorker` did with the work it had in flight when it was told to stop."""

    finished: int = 0  # in flight at the stop and finished within the grace period
    handed_back: int = 0  # cut short, and given back due now for another replica to take at once
    not_held: int = 0  # cut short, but no longer this process's: already rescheduled, or claimed elsewhere since


class LeaseWorker:
    """Runs ``handle`` on every due member of a lease schedule, at most ``concurrency`` at once, until stopped.

    ``handle`` must not raise (each one logs and counts its own failures): the lease brings a member back if its
    handling dies with its replica. ``between`` (optional) runs once per round, for gauges. ``on_error`` is called
    inside ``except`` when a round fails (see :class:`service.background.Survivor`); the loop then waits longer
    after each consecutive failure, up to a second, instead of retrying a dead Redis every tick. ``observe_lag``
    (optional) is given, for every member claimed, how many seconds after its due time it was claimed.

    Once stopped, the loop claims nothing more and lets the handlers in flight finish for up to ``grace_seconds``;
    it cancels the rest, whose claims :meth:`hand_back` then gives back to the schedule, due now.
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
        observe_lag: Callable[[float], None] | None = None,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
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
        self._observe_lag = observe_lag
        self._grace = grace_seconds
        self._clock = clock
        self._inflight: dict[asyncio.Task[None], Claim] = {}
        self._cut_short: list[Claim] = []
        self._finished_at_stop = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and handle due members until ``stop`` is set; survives Redis outages. Then lets its handlers finish
        for up to the grace period and cancels the rest (see :meth:`hand_back`)."""
        failures = 0
        adopt_at = self._clock()
        while not stop.is_set():
            try:
                if self._clock() >= adopt_at:  # entries left in other shard counts' keys (lease_schedule.py)
                    adopt_at = self._clock() + ADOPT_EVERY_SECONDS
                    await self._schedule.adopt_strays()
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
        await self._stop_handlers()

    async def claim_and_start(self) -> int:
        """Claim as many due members as there are free slots and start handling them. Returns how many."""
        free = self._concurrency - len(self._inflight)
        if free <= 0:
            return 0
        now = self._clock()
        try:
            claims = await self._schedule.claim(int(now * 1000), lease_ms=self._lease_ms, limit=min(free, self._batch))
        except PartialClaimError as partial:  # what the shards that answered gave is leased: handle it, then fail
            self._start(partial.claims, now)
            raise partial.error from partial
        self._start(claims, now)
        return len(claims)

    def _start(self, claims: list[Claim], now: float) -> None:
        for claim in claims:
            if self._observe_lag is not None:
                self._observe_lag(max(0.0, now - claim.due_ms / 1000))
            task = asyncio.create_task(self._handle(claim.member))
            self._inflight[task] = claim
            task.add_done_callback(self._forget)

    async def drain(self) -> None:
        """Wait for every handler in flight, however long it takes."""
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def hand_back(self) -> Handover:
        """Give the claims whose handling the stop cut short back to the schedule, due now, so that another replica
        takes them at once instead of after the lease; only those this process still holds. Call after :meth:`run`
        has returned; nothing is cut short before that."""
        claims, self._cut_short = self._cut_short, []
        released = await self._schedule.release(claims, int(self._clock() * 1000))
        return Handover(finished=self._finished_at_stop, handed_back=released, not_held=len(claims) - released)

    async def _stop_handlers(self) -> None:
        running = dict(self._inflight)
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=self._grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        self._finished_at_stop = len(running) - len(late)
        self._cut_short = [running[task] for task in late]

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
