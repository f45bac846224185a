"""How many jobs are in flight, by state: ``gateway_jobs_in_flight{state}``, read from Redis, not kept per request.

Every unfinished job has an entry in the tracker's due schedule, so the census reads the schedule's members and
each one's state, in pipelined batches, once per interval. Every process that runs the tracker takes it, so each
replica reports the same numbers as of its last census; dashboards take the largest (``max``), never the sum.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from redis.asyncio import Redis

from service import keys
from service.background import Survivor
from service.domain.jobs import JobState
from service.lease_schedule import LeaseSchedule
from service.metrics import Metrics

BATCH = 1000
COUNTED = (JobState.SUBMITTING, JobState.IN_QUEUE, JobState.IN_PROGRESS)


class JobCensus:
    def __init__(self, redis: Redis, due: LeaseSchedule, metrics: Metrics, *, interval_seconds: float) -> None:
        self._redis = redis
        self._due = due
        self._metrics = metrics
        self._interval = interval_seconds
        self._survivor = Survivor("job_census", metrics)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.count()
            except Exception:  # noqa: BLE001 - the loop must survive anything; logged and counted
                self._survivor.survived("job_census_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)

    async def count(self) -> dict[JobState, int]:
        """Count, publish and return the jobs in flight by state (a job finishing meanwhile counts as none)."""
        counts = dict.fromkeys(COUNTED, 0)
        for shard in range(len(self._due.shard_keys)):
            start = 0
            while members := await self._due.members(shard, start, BATCH):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for member in members:
                        pipe.hget(keys.job(member), "state")
                    states: list[Any] = await pipe.execute()
                for raw in states:
                    state = _state(raw)
                    if state in counts:
                        counts[state] += 1
                start += BATCH
        for state, count in counts.items():
            self._metrics.jobs_in_flight.labels(state=state.value).set(count)
        return counts


def _state(raw: str | None) -> JobState | None:
    if raw is None:
        return None
    try:
        return JobState(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValueError):
        return None
