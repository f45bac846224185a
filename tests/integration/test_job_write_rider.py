"""A write with a rider (``JobStore.update(rider=...)``): the submit's write of fal's id carries the first poll's
schedule entry and the read-back of the record in its round trip, on a single Redis and on a cluster, where the
job's slot and the schedule's are different ones."""

from __future__ import annotations

from redis.asyncio import Redis

from service import keys
from service.domain.jobs import Job, JobMode, JobState, Outcome
from service.jobs.store import DueSchedule, JobStore, ScheduleAndRead
from tests.support.endpoints import T2V
from tests.support.redis_cluster import MODES

REDIS_MODES = MODES
RID = "00000000-0000-4000-8000-0000000000c1"


def _job() -> Job:
    return Job(request_id=RID, tenant_id="acme", endpoint_id=T2V, mode=JobMode.QUEUE, input={"p": 1}, created_at=1.0)


async def test_the_write_schedules_and_reads_back_in_its_round_trip(redis_client: Redis) -> None:
    store, due = JobStore(redis_client, retention_seconds=600), DueSchedule(redis_client, shards=4)
    await store.create(_job())
    await due.schedule(RID, 90_000)
    poll = ScheduleAndRead(store, due, RID, 1_500)
    assert await store.update(RID, rider=poll, state=JobState.IN_QUEUE, upstream_id="up-1")
    assert (poll.failed, await due.due_at(RID)) == (False, 1_500)
    assert poll.current is not None
    assert (poll.current.state, poll.current.upstream_id) == (JobState.IN_QUEUE, "up-1"), "read after the write"
    assert poll.current == await store.get(RID)


async def test_a_refused_write_still_runs_its_rider(redis_client: Redis) -> None:
    store, due = JobStore(redis_client, retention_seconds=600), DueSchedule(redis_client, shards=4)
    await store.create(_job())
    assert await store.complete(RID, {"outcome": Outcome.CANCELLED}) == 1
    poll = ScheduleAndRead(store, due, RID, 2_000)
    assert not await store.update(RID, rider=poll, upstream_id="late")
    assert await due.due_at(RID) == 2_000, "scheduled as before the merge: the tracker finishes a completed job"
    assert poll.current is not None
    assert (poll.current.state, poll.current.upstream_id) == (JobState.COMPLETED, None)
    missing = ScheduleAndRead(store, due, "no-such-job", 3_000)
    assert not await store.update("no-such-job", rider=missing, upstream_id="x")
    assert missing.current is None


async def test_a_failing_rider_command_leaves_the_write_standing(redis_client: Redis) -> None:
    store, due = JobStore(redis_client, retention_seconds=600), DueSchedule(redis_client, shards=1)
    await store.create(_job())
    await redis_client.set(keys.tracker_due(), "not a sorted set")  # the rider's ZADD answers WRONGTYPE
    poll = ScheduleAndRead(store, due, RID, 1_500)
    assert await store.update(RID, rider=poll, upstream_id="up-2")
    assert poll.failed
    assert poll.current is not None
    assert poll.current.upstream_id == "up-2"
    stored = await store.get(RID)
    assert stored is not None
    assert stored.upstream_id == "up-2"
