"""Integration fixtures: gateway replicas sharing the suite's Redis and one simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from redis.asyncio import Redis

from service.simulator.state import SimulatorState
from tests.support.gateway import fast_settings
from tests.support.replicas import Replicas, StartReplicas, serve_replicas


@pytest.fixture
async def replicas(redis_client: Redis, redis_url: str) -> AsyncIterator[StartReplicas]:
    """Starts replicas on the suite's Redis, ``start(count=2, sim=None, **settings overrides)``; all stop after the
    test."""
    async with AsyncExitStack() as stack:

        async def start(*, count: int = 2, sim: SimulatorState | None = None, **overrides: Any) -> Replicas:
            settings = fast_settings(redis_url, **overrides)
            return await stack.enter_async_context(serve_replicas(redis_client, settings, sim=sim, count=count))

        yield start
