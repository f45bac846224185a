"""API-test fixtures: the real app on real Redis, with the simulator as upstream through an in-process transport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from litestar import Litestar
from redis.asyncio import Redis

from service.app import create_app
from service.config import Settings
from service.http import in_process_transport
from service.metrics import Metrics
from service.simulator.app import SimulatorConfig, SimulatorState, create_simulator_app

ADMIN_TOKEN = "admin-token-for-tests"
FAL_KEY = "fal-key-for-tests"
I2V = "fal-ai/bytedance/seedance/v1.5/pro/image-to-video"
T2V = "fal-ai/bytedance/seedance/v1.5/pro/text-to-video"
I2V_INPUT: dict[str, Any] = {"prompt": "a cat waves", "image_url": "https://example.com/cat.png"}
T2V_INPUT: dict[str, Any] = {"prompt": "a red fox in snow"}


class ShiftableClock:
    """Wall-clock time plus an offset a test can move forward (key expiry, grace periods) without sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Gateway:
    client: httpx.AsyncClient
    sim: SimulatorState
    settings: Settings
    metrics: Metrics
    redis: Redis
    clock: ShiftableClock
    keys: dict[str, str] = field(default_factory=dict)

    async def key_for(self, tenant_id: str) -> str:
        """Create the tenant unless it exists, and a fresh key for it, through the admin API."""
        if (await self.client.get(f"/admin/tenants/{tenant_id}", headers=self.admin)).status_code == 404:
            created = await self.client.post(
                "/admin/tenants", json={"id": tenant_id, "name": tenant_id.title()}, headers=self.admin
            )
            assert created.status_code == 201, created.text
        issued = await self.client.post(f"/admin/tenants/{tenant_id}/keys", headers=self.admin)
        assert issued.status_code == 201, issued.text
        self.keys[tenant_id] = issued.json()["key"]
        return self.keys[tenant_id]

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def auth(self, tenant_id: str = "acme") -> dict[str, str]:
        key = self.keys.get(tenant_id) or await self.key_for(tenant_id)
        return {"Authorization": f"Key {key}"}

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


async def eventually(probe: Callable[[], Awaitable[Any]], *, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Re-run ``probe`` until it returns something truthy; fail after ``timeout`` seconds. A bounded condition
    wait, not a fixed sleep: it returns as soon as the condition holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def fast_settings(redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "admin_token": ADMIN_TOKEN,
        "fal_key": FAL_KEY,
        "tracker_poll_initial_seconds": 0.05,
        "tracker_poll_max_seconds": 0.2,
        "tracker_tick_seconds": 0.02,
        "tracker_lease_seconds": 2.0,
        "watch_fallback_seconds": 0.2,
        "upstream_submit_timeout_seconds": 2.0,
        "log_json": True,
    }
    return Settings(**{**values, **overrides})


def fast_simulator() -> SimulatorState:
    return SimulatorState(SimulatorConfig(queue_seconds=0.05, processing_seconds=0.3, log_lines=3, fal_key=FAL_KEY))


@pytest.fixture
def sim() -> SimulatorState:
    return fast_simulator()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return fast_settings(redis_url)


@pytest.fixture
async def gateway(redis_client: Redis, sim: SimulatorState, settings: Settings) -> AsyncIterator[Gateway]:
    metrics = Metrics()
    clock = ShiftableClock()
    transport = in_process_transport(create_simulator_app(sim))
    app = create_app(settings, redis=redis_client, upstream_transport=transport, metrics=metrics, clock=clock)
    async with serve_in_process(app) as client:
        yield Gateway(client=client, sim=sim, settings=settings, metrics=metrics, redis=redis_client, clock=clock)


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
        async with httpx.AsyncClient(
            transport=in_process_transport(app), base_url="http://testserver.local", timeout=30
        ) as client:
            yield client
    finally:
        stop.set()
        await task
