"""Fixtures of the simulator's own tests: a fake clock, a simulator state on it, and a client to its app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from service.simulator.state import SimulatorState
from tests.api.simulator.sim_support import FakeClock, make_state, sim_client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> SimulatorState:
    return make_state(clock)


@pytest.fixture
async def client(state: SimulatorState) -> AsyncIterator[httpx.AsyncClient]:
    async with sim_client(state) as c:
        yield c
