"""Job events over sharded channels (``service/events.py``, ``service/sharded_pubsub.py``): on a cluster every
change is announced with SPUBLISH on the channel of its request's shard, each master holds the subscriptions of its
own slots, and a lost subscription is re-established; on one Redis the same channels are plain pub/sub."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis
from redis.asyncio import Redis

from service import keys
from service.background import cancel_and_wait
from service.domain.endpoints import TEXT_TO_VIDEO
from service.domain.jobs import Job, JobMode
from service.events import EventBus, JobChannels
from service.jobs.events import JobEvents
from service.jobs.store import JobStore
from tests.support.redis_cluster import MODES, ClusterRedis, is_cluster
from tests.support.waiting import eventually

REDIS_MODES = MODES
SHARDS = 4


@dataclass
class Rig:
    bus: EventBus
    store: JobStore
    events: JobEvents
    sharded: bool


@pytest.fixture
async def rig(redis_client: Redis, redis_url: str) -> AsyncIterator[Rig]:
    sharded = is_cluster(redis_url)
    bus = EventBus(redis_client, sharded=sharded, reconnect_seconds=0.05)
    channels = JobChannels.of(SHARDS)
    store = JobStore(redis_client, retention_seconds=600, channels=channels, bus=bus)
    events = JobEvents(bus, channels)
    running = asyncio.create_task(bus.run())
    assert await bus.wait_connected(10)
    yield Rig(bus, store, events, sharded)
    assert await cancel_and_wait(running, timeout=10)


def _one_id_per_shard() -> list[str]:
    by_shard = {keys.shard_index(f"00000000-0000-4000-8000-{n:012d}", SHARDS): n for n in range(100)}
    return [f"00000000-0000-4000-8000-{by_shard[shard]:012d}" for shard in range(SHARDS)]


async def _changes_wake_their_waiters(rig: Rig) -> None:
    ids = _one_id_per_shard()
    for rid in ids:
        await rig.store.create(
            Job(
                request_id=rid,
                tenant_id="acme",
                endpoint_id=TEXT_TO_VIDEO.id,
                mode=JobMode.QUEUE,
                input={},
                created_at=1.0,
            )
        )
    with contextlib.ExitStack() as stack:
        woken = [stack.enter_context(rig.events.listen(rid)) for rid in ids]
        for rid in ids:
            await rig.store.update(rid, queue_position=1)
        async with asyncio.timeout(10):
            await asyncio.gather(*(event.wait() for event in woken))


async def test_a_change_on_every_shard_wakes_its_waiters(rig: Rig) -> None:
    await _changes_wake_their_waiters(rig)


async def test_on_a_cluster_the_shard_channels_are_subscribed_on_their_own_masters(
    rig: Rig, request: pytest.FixtureRequest
) -> None:
    if not rig.sharded:
        pytest.skip("sharded pub/sub is the cluster's")
    cluster: ClusterRedis = request.getfixturevalue("cluster_server")
    channels = keys.job_event_channels(SHARDS)
    holders: dict[str, int] = {}
    for port in cluster.ports:
        with redis.Redis(port=port, decode_responses=True) as node:
            subscribed = node.execute_command("PUBSUB", "SHARDNUMSUB", *channels)
            for channel, count in zip(subscribed[::2], subscribed[1::2], strict=True):
                if int(count):
                    holders[channel] = port
            assert node.execute_command("PUBSUB", "NUMSUB", keys.job_events_channel()) == [
                keys.job_events_channel(),
                0,
            ], "no classic subscription, so no message crosses the cluster bus"
    assert set(holders) == set(channels), "each shard channel subscribed once, on its slot's master"
    assert len(set(holders.values())) > 1, "the shards spread over more than one master"


async def test_a_lost_subscription_is_reestablished_and_events_flow_again(
    rig: Rig, redis_url: str, request: pytest.FixtureRequest
) -> None:
    resets = 0

    def count_reset() -> None:
        nonlocal resets
        resets += 1

    rig.bus.on_reset(count_reset)
    ports = request.getfixturevalue("cluster_server").ports if rig.sharded else ()
    if rig.sharded:
        for port in ports:
            with redis.Redis(port=port) as node:
                node.client_kill_filter(_type="pubsub")
    else:
        with redis.Redis.from_url(redis_url) as server:
            server.client_kill_filter(_type="pubsub")

    async def resubscribed() -> bool:
        return resets >= 2 and rig.bus.connected  # one reset when lost, one when subscribed again

    await eventually(resubscribed)
    await _changes_wake_their_waiters(rig)
