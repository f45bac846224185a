"""Integration fixtures: several gateway app instances sharing one real Redis and one simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from redis.asyncio import Redis

from service.app import create_app
from service.http import in_process_transport
from service.simulator.app import create_simulator_app
from service.simulator.state import SimulatorState
from tests.api.conftest import ShiftableClock, fast_settings, fast_simulator, serve_in_process


@asynccontextmanager
async def replica_clients(
    redis: Redis, redis_url: str, *, processing_seconds: float, count: int = 2
) -> AsyncIterator[tuple[list[httpx.AsyncClient], SimulatorState]]:
    """``count`` app instances (replicas) on one Redis, one simulator and one clock, each with its own client."""
    sim = fast_simulator()
    sim.configure(processing_seconds=processing_seconds)
    clock = ShiftableClock()
    apps = [
        create_app(
            fast_settings(redis_url),
            redis=redis,
            clock=clock,
            upstream_transport=in_process_transport(create_simulator_app(sim)),
        )
        for _ in range(count)
    ]
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(serve_in_process(app)) for app in apps], sim
