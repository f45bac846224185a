"""Redis as the metrics see it: command latency, reachability, and the census of jobs in flight (real Redis)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from service import keys
from service.domain.endpoints import TEXT_TO_VIDEO
from service.domain.jobs import Job, JobMode, JobState
from service.jobs.census import JobCensus
from service.jobs.store import DueSchedule, JobStore
from service.metrics import Metrics
from service.redis_client import connect_url
from service.redis_timing import observer
from tests.support.loopback import free_port
from tests.support.redis_cluster import MODES, connect_any

REDIS_MODES = MODES  # the timed client of either kind


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_every_command_and_pipeline_is_timed_and_redis_reported_up(redis_url: str, redis_client: Redis) -> None:
    metrics = Metrics()
    client = connect_any(redis_url, max_connections=8, timeout=2.0, observe=observer(metrics))
    try:
        await client.set("gw:test:timed", "1")
        await client.get("gw:test:timed")
        async with client.pipeline(transaction=False) as pipe:
            pipe.get("gw:test:timed")
            pipe.get("gw:test:timed")
            await pipe.execute()
        async with client.pipeline(transaction=True) as pipe:
            pipe.get("gw:test:timed")
            await pipe.execute()
    finally:
        await client.aclose()
    for command in ("SET", "GET", "PIPELINE", "MULTI"):
        assert (sample(metrics, "gateway_redis_command_duration_seconds_count", command=command) or 0) >= 1, command
    assert sample(metrics, "gateway_redis_command_duration_seconds_count", command="GET") == 1
    assert sample(metrics, "gateway_redis_up") == 1


async def test_an_unreachable_redis_is_reported_down() -> None:
    metrics = Metrics()
    metrics.redis_up.set(1)
    client = connect_url(
        f"redis://127.0.0.1:{free_port()}/0", max_connections=2, timeout=0.5, observe=observer(metrics)
    )
    try:
        with pytest.raises(RedisConnectionError):
            await client.get("anything")
    finally:
        await client.aclose()
    assert sample(metrics, "gateway_redis_up") == 0
    assert sample(metrics, "gateway_redis_command_duration_seconds_count", command="GET") == 1


def _job(rid: str, state: JobState) -> Job:
    return Job(
        request_id=rid,
        tenant_id="acme",
        endpoint_id=TEXT_TO_VIDEO.id,
        mode=JobMode.QUEUE,
        input={"prompt": "x"},
        created_at=1_700_000_000.0,
        state=state,
    )


@pytest.mark.parametrize("shards", [1, 4])
async def test_the_census_counts_scheduled_jobs_by_their_recorded_state(redis_client: Redis, shards: int) -> None:
    store, due = JobStore(redis_client, retention_seconds=3600), DueSchedule(redis_client, shards=shards)
    states = [JobState.SUBMITTING] + [JobState.IN_QUEUE] * 3 + [JobState.IN_PROGRESS] * 2 + [JobState.COMPLETED]
    for n, state in enumerate(states):
        rid = f"00000000-0000-4000-8000-{n:012d}"
        await store.create(_job(rid, state))
        await due.schedule(rid, 1)
    await due.schedule("00000000-0000-4000-8000-999999999999", 1)  # an entry whose record is gone
    metrics = Metrics()
    census = JobCensus(redis_client, due, metrics, interval_seconds=60)
    counts = await census.count()
    assert counts == {JobState.SUBMITTING: 1, JobState.IN_QUEUE: 3, JobState.IN_PROGRESS: 2}
    assert sample(metrics, "gateway_jobs_in_flight", state="IN_QUEUE") == 3
    assert await due.size() == len(states) + 1
    assert sum([await redis_client.zcard(key) for key in keys.tracker_due_shards(shards)]) == len(states) + 1
