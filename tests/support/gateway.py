"""The gateway under test in the test's own event loop: fast settings and simulator, in-process serving, ``Gateway``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar import Litestar
from redis.asyncio import Redis

from service.app import create_app
from service.config import Settings
from service.http import in_process_transport
from service.metrics import Metrics
from service.simulator.app import SimulatorConfig, SimulatorState, create_simulator_app
from tests.support.admin import ADMIN, ADMIN_TOKEN, FAL_KEY, create_tenant, issue_key, key_auth
from tests.support.clocks import ShiftableClock
from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.redis_cluster import is_cluster
from tests.support.waiting import eventually

BASE_URL = "http://testserver.local"


def local(url: str) -> str:
    """The path of one of the in-process gateway's own absolute URLs (status, response and cancel URLs)."""
    assert url.startswith(BASE_URL + "/"), url
    return url.removeprefix(BASE_URL)


def fast_settings(redis_url: str, **overrides: Any) -> Settings:
    """Settings with the tracker, leases and fallbacks shortened so that jobs complete in well under a second."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "redis_cluster": is_cluster(redis_url),
        "admin_token": ADMIN_TOKEN,
        "fal_key": FAL_KEY,
        "tracker_poll_initial_seconds": 0.05,
        "tracker_poll_max_seconds": 0.2,
        "tracker_poll_queued_max_seconds": 0.2,
        "tracker_tick_seconds": 0.02,
        "tracker_lease_seconds": 2.0,
        "watch_fallback_seconds": 0.2,
        "upstream_submit_timeout_seconds": 2.0,
        "log_json": True,
    }
    return Settings(**{**values, **overrides})


def fast_simulator(clock: Callable[[], float] = time.monotonic) -> SimulatorState:
    """A simulator whose jobs take 0.35 s on ``clock``: on a hand-driven clock they take as long as the test says."""
    config = SimulatorConfig(queue_seconds=0.05, processing_seconds=0.3, log_lines=3, fal_key=FAL_KEY)
    return SimulatorState(config, clock=clock)


def simulator_transport(sim: SimulatorState) -> httpx.AsyncBaseTransport:
    """The gateway's upstream: the simulator app around ``sim``, in-process."""
    return in_process_transport(create_simulator_app(sim))


@asynccontextmanager
async def serve_in_process(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan in the test's own event loop and talk to it over an in-process ASGI transport.

    Litestar's test clients run the lifespan on a separate loop, which cannot share a Redis connection with the
    test. The lifespan is entered and exited inside one task because it holds an anyio cancel scope.
    """
    started, stop = asyncio.Event(), asyncio.Event()

    async def hold_lifespan() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(hold_lifespan())
    await asyncio.wait({task, asyncio.create_task(started.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # startup failed: raise its error here
    try:
        async with httpx.AsyncClient(transport=in_process_transport(app), base_url=BASE_URL, timeout=30) as client:
            yield client
    finally:
        stop.set()
        await task


@dataclass
class Gateway:
    """One in-process gateway and everything around it a test looks at or moves: its simulator, clock and Redis."""

    client: httpx.AsyncClient
    sim: SimulatorState
    settings: Settings
    metrics: Metrics
    redis: Redis
    clock: ShiftableClock
    keys: dict[str, str] = field(default_factory=dict)
    app: Litestar | None = None

    async def key_for(self, tenant_id: str) -> str:
        """Create the tenant unless it exists, and a fresh key for it, through the admin API."""
        if (await self.client.get(f"/admin/tenants/{tenant_id}", headers=self.admin)).status_code == 404:
            await create_tenant(self.client, tenant_id)
        self.keys[tenant_id] = await issue_key(self.client, tenant_id)
        return self.keys[tenant_id]

    @property
    def admin(self) -> dict[str, str]:
        return ADMIN

    async def auth(self, tenant_id: str = "acme") -> dict[str, str]:
        return key_auth(self.keys.get(tenant_id) or await self.key_for(tenant_id))

    async def submit(
        self, endpoint: str = T2V, body: dict[str, Any] | None = None, *, tenant: str = "acme", **kwargs: Any
    ) -> httpx.Response:
        return await self.client.post(
            f"/queue/{endpoint}", json=T2V_INPUT if body is None else body, headers=await self.auth(tenant), **kwargs
        )

    async def wait_status(self, status_url: str, *, tenant: str = "acme", timeout: float = 10.0) -> dict[str, Any]:
        """Poll the gateway until COMPLETED; returns the final status body."""
        headers = await self.auth(tenant)

        async def completed() -> dict[str, Any] | None:
            response = await self.client.get(status_url, headers=headers)
            body: dict[str, Any] = response.json()
            return body if body["status"] == "COMPLETED" else None

        final: dict[str, Any] = await eventually(completed, timeout=timeout)
        return final


@asynccontextmanager
async def running_gateway(
    redis: Redis, sim: SimulatorState, settings: Settings, **app_options: Any
) -> AsyncIterator[Gateway]:
    """The app on ``settings`` in front of ``sim``, served in-process, with a fresh registry and a movable clock;
    ``app_options`` go to ``create_app`` (completion hooks, webhook transport, resolver)."""
    metrics, clock = Metrics(), ShiftableClock()
    app = create_app(
        settings, redis=redis, upstream_transport=simulator_transport(sim), metrics=metrics, clock=clock, **app_options
    )
    async with serve_in_process(app) as client:
        yield Gateway(client=client, sim=sim, settings=settings, metrics=metrics, redis=redis, clock=clock, app=app)
