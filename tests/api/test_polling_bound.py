"""Client polling never multiplies upstream calls: status is answered from Redis, the tracker alone polls fal."""

from __future__ import annotations

import asyncio
import math

import pytest

from service.config import Settings
from service.simulator.app import SimulatorState
from tests.support.clocks import ManualClock
from tests.support.gateway import Gateway, fast_settings, fast_simulator
from tests.support.waiting import eventually

PROCESSING_SECONDS = 2.0
CLIENTS = 50
CLIENT_INTERVAL = 0.1  # 10 Hz
POLLS_PER_STATE = CLIENTS * math.floor(PROCESSING_SECONDS / CLIENT_INTERVAL) // 2  # at least 10 per client


@pytest.fixture
def sim_clock() -> ManualClock:
    return ManualClock(0.0)


@pytest.fixture
def sim(sim_clock: ManualClock) -> SimulatorState:
    """fal's job moves on only when the test says: after the clients' polls, however long a loaded machine takes."""
    return fast_simulator(clock=sim_clock)


@pytest.fixture
def settings(redis_url: str) -> Settings:
    # The tracker's real schedule: first poll after 0.25 s, then x1.5 each poll, at most every 1 s.
    return fast_settings(
        redis_url,
        tracker_poll_initial_seconds=0.25,
        tracker_poll_backoff=1.5,
        tracker_poll_max_seconds=1.0,
        tracker_poll_queued_max_seconds=1.0,
    )


def tracker_poll_bound(duration: float, settings: Settings) -> int:
    """Upper bound on upstream status calls the schedule allows over ``duration`` seconds, for each of the two
    state changes (IN_QUEUE -> IN_PROGRESS resets the backoff), plus the final poll that sees COMPLETED."""
    polls, elapsed, delay = 0, 0.0, settings.tracker_poll_initial_seconds
    while elapsed < duration:
        elapsed += delay
        polls += 1
        delay = min(settings.tracker_poll_max_seconds, delay * settings.tracker_poll_backoff)
    return 2 * polls + 1


async def test_fifty_clients_polling_at_10hz_do_not_add_upstream_status_calls(
    gateway: Gateway, sim_clock: ManualClock
) -> None:
    gateway.sim.configure(queue_seconds=0.2, processing_seconds=PROCESSING_SECONDS)
    submitted = (await gateway.submit()).json()
    headers = await gateway.auth()
    client_polls = 0

    async def poller() -> None:
        nonlocal client_polls
        while True:
            response = await gateway.client.get(submitted["status_url"], params={"logs": "1"}, headers=headers)
            client_polls += 1
            if response.json()["status"] == "COMPLETED":
                return
            await asyncio.sleep(CLIENT_INTERVAL)

    async def polled(count: int) -> bool:
        return client_polls >= count

    loop = asyncio.get_running_loop()
    started = loop.time()
    pollers = asyncio.gather(*(poller() for _ in range(CLIENTS)))
    await eventually(lambda: polled(POLLS_PER_STATE), timeout=20)  # in fal's queue
    sim_clock.advance(0.2)  # now generating
    await eventually(lambda: polled(2 * POLLS_PER_STATE), timeout=20)
    sim_clock.advance(PROCESSING_SECONDS)  # done
    await asyncio.wait_for(pollers, timeout=15)
    elapsed = loop.time() - started

    (upstream,) = gateway.sim.stats()["requests"].values()
    bound = tracker_poll_bound(elapsed, gateway.settings)
    assert client_polls >= 2 * POLLS_PER_STATE
    assert upstream["status_calls"] <= bound, (upstream["status_calls"], bound, client_polls)
    assert upstream["result_calls"] == 1, "the result is fetched once and served from Redis"
