"""API-test fixtures: the real app on real Redis, with the simulator as upstream through an in-process transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from service.config import Settings
from service.simulator.app import SimulatorState
from tests.support.gateway import Gateway, fast_settings, fast_simulator, running_gateway
from tests.support.receiver import Receiver


@pytest.fixture
def sim() -> SimulatorState:
    return fast_simulator()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return fast_settings(redis_url)


@pytest.fixture
async def gateway(redis_client: Redis, sim: SimulatorState, settings: Settings) -> AsyncIterator[Gateway]:
    async with running_gateway(redis_client, sim, settings) as gateway:
        yield gateway


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a loopback port, stopped after the test."""
    started = Receiver().start()
    yield started
    started.stop()
