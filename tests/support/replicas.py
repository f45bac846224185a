"""Several gateway app instances (replicas) sharing one Redis, one simulator and one clock, as in a deployment."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
from litestar import Litestar
from redis.asyncio import Redis

from service.app import create_app
from service.config import Settings
from service.container import Deps
from service.simulator.state import SimulatorState
from tests.support.clocks import ShiftableClock
from tests.support.gateway import fast_simulator, serve_in_process, simulator_transport


@dataclass
class Replicas:
    clients: list[httpx.AsyncClient]
    apps: list[Litestar]
    sim: SimulatorState
    clock: ShiftableClock

    @property
    def deps(self) -> list[Deps]:
        return [app.state.deps for app in self.apps]


StartReplicas = Callable[..., Awaitable[Replicas]]


@asynccontextmanager
async def serve_replicas(
    redis: Redis, settings: Settings, *, sim: SimulatorState | None = None, count: int = 2
) -> AsyncIterator[Replicas]:
    """``count`` replicas, each served in-process with its own client; ready once every one listens to the event
    bus (until then a replica trusts no cache and hears no job change)."""
    sim = fast_simulator() if sim is None else sim
    clock = ShiftableClock()
    apps = [
        create_app(settings, redis=redis, clock=clock, upstream_transport=simulator_transport(sim))
        for _ in range(count)
    ]
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(serve_in_process(app)) for app in apps]
        replicas = Replicas(clients, apps, sim, clock)
        for deps in replicas.deps:
            assert await deps.bus.wait_connected(5), "a replica did not subscribe to the event bus"
        yield replicas
