"""Bugs the fault scenarios found, each reproduced deterministically in-process: xfail while open, then kept."""

from __future__ import annotations

from typing import Any, cast

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from service import keys
from service.jobs.recording import UpstreamRecorder
from service.jobs.store import JobStore
from tests.support.gateway import BASE_URL, fast_settings, fast_simulator, running_gateway
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e
SEEDED = {"prompt": "a follower and its schedule", "seed": 7}


async def test_a_follower_refused_between_record_and_schedule_still_finishes(
    redis_client: Redis, redis_url: str
) -> None:
    """Found by the Redis restart scenario: a 503 follower whose record stayed IN_QUEUE (the admin history shows it so
    until the record expires, GATEWAY_JOB_RETENTION_SECONDS)."""
    async with running_gateway(redis_client, fast_simulator(), fast_settings(redis_url)) as gw:
        leader = await gw.submit(body=SEEDED)
        assert leader.status_code == 200, leader.text
        # Every write to the tracker's schedule fails while the follower is answered (WRONGTYPE here; a lost
        # connection or a timeout does the same: a RedisError, then 503).
        await redis_client.rename(keys.tracker_due(), "parked-due")
        await redis_client.set(keys.tracker_due(), "not a zset")
        try:
            follower = await gw.submit(body=SEEDED)
        finally:
            await redis_client.delete(keys.tracker_due())
            await redis_client.rename("parked-due", keys.tracker_due())
        assert (follower.status_code, follower.json()["error_type"]) == (503, "state_store_unavailable")
        await gw.wait_status(leader.json()["status_url"].removeprefix(BASE_URL))

        async def every_record_finished() -> bool:
            ids = cast("list[str]", await redis_client.zrange(keys.tenant_requests("acme"), 0, -1))
            states = [await redis_client.hget(keys.job(rid), "state") for rid in ids]
            # The leader, and no record for the refused follower: its schedule entry comes first now, so a failure
            # there leaves nothing behind (it used to leave a record IN_QUEUE for good).
            assert len(states) == 1, states
            return all(state == '"COMPLETED"' for state in states)

        await eventually(every_record_finished, timeout=5)


async def test_a_job_fal_accepted_during_a_long_outage_is_tracked_once_redis_is_back(
    redis_client: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the Redis stop and freeze scenarios (a 3 s outage against a 3 s grace: a race there, certain here)."""
    away = True
    original = JobStore.update

    async def update(store: JobStore, request_id: str, **values: Any) -> bool:
        if away and "upstream_id" in values:  # the write of fal's id fails as if Redis were unreachable
            raise RedisConnectionError("Redis went away")
        return await original(store, request_id, **values)

    monkeypatch.setattr(JobStore, "update", update)
    settings = fast_settings(redis_url, upstream_submit_timeout_seconds=0.5)
    async with running_gateway(redis_client, fast_simulator(), settings) as gw:
        answer = await gw.submit()
        assert (answer.status_code, answer.json()["error_type"]) == (500, "upstream_accepted_unrecorded")
        request_id = answer.json()["request_id"]
        due_at = await redis_client.zscore(keys.tracker_due(), request_id)
        assert due_at is not None
        # The outage outlasts the submit grace: the tracker comes to the job while Redis still refuses fal's id.
        gw.clock.advance(settings.submit_grace_seconds + 1)

        async def tracker_came() -> bool:
            score = await redis_client.zscore(keys.tracker_due(), request_id)
            return score is None or score > due_at

        await eventually(tracker_came, timeout=5)
        away = False
        final = await gw.wait_status(f"/queue/fal-ai/bytedance/requests/{request_id}/status")
        assert "error" not in final, final
        assert gw.sim.stats()["calls"]["submit"] == 1


async def test_a_job_whose_id_is_written_while_the_tracker_looks_at_it_is_not_failed(
    redis_client: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the Redis stop scenario (a job failed 50 ms after its id was written). The interleaving is forced:
    the tracker reads the job still SUBMITTING past its grace, then the recorder's flush lands, then write_now."""
    refusing = True
    update, write_now = JobStore.update, UpstreamRecorder.write_now

    async def failing_update(store: JobStore, request_id: str, **values: Any) -> bool:
        if refusing and "upstream_id" in values:  # Redis refuses fal's id until the tracker has read the record
            raise RedisConnectionError("Redis went away")
        return await update(store, request_id, **values)

    async def flushed_first(recorder: UpstreamRecorder, request_id: str) -> bool:
        nonlocal refusing
        refusing = False
        await recorder.flush()  # the background loop's write, landing between the tracker's read and this call
        return await write_now(recorder, request_id)

    monkeypatch.setattr(JobStore, "update", failing_update)
    monkeypatch.setattr(UpstreamRecorder, "write_now", flushed_first)
    settings = fast_settings(redis_url, upstream_submit_timeout_seconds=0.5)
    async with running_gateway(redis_client, fast_simulator(), settings) as gw:
        answer = await gw.submit()
        assert (answer.status_code, answer.json()["error_type"]) == (500, "upstream_accepted_unrecorded")
        request_id = answer.json()["request_id"]
        gw.clock.advance(settings.submit_grace_seconds + 1)
        final = await gw.wait_status(f"/queue/fal-ai/bytedance/requests/{request_id}/status")
        assert "error" not in final, final
        assert gw.sim.stats()["calls"]["submit"] == 1
