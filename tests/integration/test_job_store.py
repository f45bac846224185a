"""JobStore and DueSchedule against real Redis: terminal states are final, completion happens once, claims lease."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from service import keys
from service.domain.jobs import Job, JobMode, JobState, Outcome
from service.jobs.store import DueSchedule, JobStore
from service.lease_schedule import Claim
from tests.support.endpoints import T2V


def _job(rid: str = "00000000-0000-4000-8000-000000000001") -> Job:
    return Job(
        request_id=rid,
        tenant_id="acme",
        endpoint_id=T2V,
        mode=JobMode.QUEUE,
        input={"prompt": "x"},
        created_at=1000.0,
    )


async def test_record_round_trips(redis_client: Redis) -> None:
    store = JobStore(redis_client, retention_seconds=600)
    job = _job()
    job.logs = [{"message": "hi"}]
    await store.create(job)
    assert await store.get(job.request_id) == job
    assert await store.get("missing") is None
    assert 0 < await redis_client.ttl(keys.job(job.request_id)) <= 600


async def test_update_applies_until_completed_and_then_never(redis_client: Redis) -> None:
    store = JobStore(redis_client, retention_seconds=600)
    job = _job()
    await store.create(job)
    assert await store.update(job.request_id, state=JobState.IN_PROGRESS, queue_position=None)
    assert await store.complete(job.request_id, {"outcome": Outcome.OK, "result": {"seed": 1}}) == 1
    assert not await store.update(job.request_id, state=JobState.IN_PROGRESS)
    stored = await store.get(job.request_id)
    assert stored is not None
    assert stored.state is JobState.COMPLETED
    assert stored.result == {"seed": 1}
    assert not await store.update("unknown-id", state=JobState.IN_QUEUE)


async def test_completion_happens_exactly_once_under_concurrency(redis_client: Redis) -> None:
    store = JobStore(redis_client, retention_seconds=600)
    job = _job()
    await store.create(job)
    answers = await asyncio.gather(
        *(store.complete(job.request_id, {"outcome": Outcome.OK, "result": {"n": n}}) for n in range(50))
    )
    outcomes = [answer == 1 for answer in answers]
    assert sorted(answers) == [0] * 49 + [1]
    stored = await store.get(job.request_id)
    assert stored is not None
    winner = outcomes.index(True)
    assert stored.result == {"n": winner}, "the one completion that won is the one recorded"


async def test_updates_are_announced_on_the_event_channel(redis_client: Redis) -> None:
    store = JobStore(redis_client, retention_seconds=600)
    job = _job()
    await store.create(job)
    announced: list[str] = []
    async with redis_client.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(keys.job_events_channel())
        await store.update(job.request_id, queue_position=3)
        # Pub/Sub is server-wide, not per database: tests in other workers on the same server publish here too.
        deadline = asyncio.get_running_loop().time() + 10.0
        while job.request_id not in announced and asyncio.get_running_loop().time() < deadline:
            if (message := await pubsub.get_message(timeout=1.0)) is not None:
                announced.append(message["data"])
    assert job.request_id in announced


async def test_claims_are_leases_that_return_after_expiry(redis_client: Redis) -> None:
    due = DueSchedule(redis_client)
    await due.schedule("a", 1_000)
    await due.schedule("b", 2_000)
    await due.schedule("later", 9_000)

    assert await due.claim(2_000, lease_ms=5_000, limit=10) == [Claim("a", 1_000, 7_000), Claim("b", 2_000, 7_000)]
    assert await due.claim(2_500, lease_ms=5_000, limit=10) == [], "a claimed entry is not handed out again"
    assert await due.claim(7_000, lease_ms=5_000, limit=10) == [
        Claim("a", 7_000, 12_000),
        Claim("b", 7_000, 12_000),
    ], "the lease ran out"
    assert await due.claim(7_000, lease_ms=5_000, limit=10) == []
    await due.finish("a")
    assert await due.size() == 2


async def test_concurrent_claimers_never_share_an_entry(redis_client: Redis) -> None:
    due = DueSchedule(redis_client)
    for n in range(200):
        await due.schedule(f"job-{n}", 1_000)
    batches = await asyncio.gather(*(due.claim(5_000, lease_ms=60_000, limit=7) for _ in range(40)))
    claimed = [claim.member for batch in batches for claim in batch]
    assert len(claimed) == 200
    assert len(set(claimed)) == 200


async def test_a_guarded_completion_happens_only_while_the_guard_field_is_unset(redis_client: Redis) -> None:
    store = JobStore(redis_client, retention_seconds=60)
    unsent, sent = _job("00000000-0000-4000-8000-0000000000a1"), _job("00000000-0000-4000-8000-0000000000a2")
    await store.create(unsent)
    await store.create(sent)
    await store.update(sent.request_id, upstream_id="fal-123", state=JobState.IN_QUEUE)
    failed = {"outcome": Outcome.ERROR, "error_type": "upstream_submit_unknown"}

    assert await store.complete(sent.request_id, failed, unless_set="upstream_id") == -2
    assert await store.complete(unsent.request_id, failed, unless_set="upstream_id") == 1
    still_tracked = await store.get(sent.request_id)
    assert still_tracked is not None
    assert (still_tracked.state, still_tracked.upstream_id) == (JobState.IN_QUEUE, "fal-123")
