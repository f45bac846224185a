"""Fixtures of the simulator's own tests: a fake clock, a simulator state on it, a client to its app, a receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from service.simulator.state import SimulatorState
from tests.support.clocks import ManualClock
from tests.support.simulator import WebhookReceiver, make_state, sim_client


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def state(clock: ManualClock) -> SimulatorState:
    return make_state(clock)


@pytest.fixture
async def client(state: SimulatorState) -> AsyncIterator[httpx.AsyncClient]:
    async with sim_client(state) as c:
        yield c


@pytest.fixture
def receiver(state: SimulatorState) -> WebhookReceiver:
    """A webhook receiver that ``state`` delivers to, answering 200."""
    hook = WebhookReceiver()
    state.webhook_transport = hook.transport
    return hook
