"""Helpers shared by the fal simulator's tests: a hand-driven clock and an in-process client on the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx

from service.simulator.app import SimulatorConfig, SimulatorState, create_simulator_app

I2V = "fal-ai/bytedance/seedance/v1.5/pro/image-to-video"
T2V = "fal-ai/bytedance/seedance/v1.5/pro/text-to-video"
I2V_INPUT: dict[str, Any] = {"prompt": "a cat waves", "image_url": "https://example.com/cat.png"}
T2V_INPUT: dict[str, Any] = {"prompt": "a red fox in snow"}
AUTH = {"Authorization": "Key sim-test-key"}
BASE = "http://sim"
WALL_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
QUEUE_SECONDS = 1.0
PROCESSING_SECONDS = 4.0
LOG_LINES = 5


class FakeClock:
    """A monotonic clock that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_state(clock: FakeClock, **config: Any) -> SimulatorState:
    values: dict[str, Any] = {
        "queue_seconds": QUEUE_SECONDS,
        "processing_seconds": PROCESSING_SECONDS,
        "log_lines": LOG_LINES,
    }
    return SimulatorState(SimulatorConfig(**{**values, **config}), clock=clock, wall_clock=lambda: WALL_START)


@asynccontextmanager
async def sim_client(state: SimulatorState, headers: dict[str, str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A client on a fresh app around ``state``; sends ``AUTH`` unless other default headers are given."""
    # Litestar types its ASGI callable more narrowly than httpx's generic `_ASGIApp`; they are the same protocol.
    transport = httpx.ASGITransport(app=cast("Any", create_simulator_app(state)))
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, headers=AUTH if headers is None else headers
    ) as client:
        yield client


async def submit(client: httpx.AsyncClient, endpoint: str = T2V, body: Any = None) -> dict[str, Any]:
    """Submit and return the queue handle, asserting the submit itself was accepted."""
    response = await client.post(f"/{endpoint}", json=T2V_INPUT if body is None else body)
    assert response.status_code == 200, response.text
    handle: dict[str, Any] = response.json()
    return handle


def path_of(url: str) -> str:
    """The simulator-relative path of one of its own absolute URLs."""
    assert url.startswith(BASE + "/"), url
    return url.removeprefix(BASE)
