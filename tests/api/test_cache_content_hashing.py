"""Hashing input images by content: the same image under two URLs hits, a changed image under one URL misses, and
images are only fetched from safe destinations (otherwise the key falls back to the URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from service.app import create_app
from service.config import Settings
from service.simulator.state import SimulatorState
from tests.support.admin import key_auth, tenant_key
from tests.support.endpoints import I2V
from tests.support.gateway import fast_settings, fast_simulator, local, serve_in_process, simulator_transport

UPSTREAM = "https://queue.fal.run"


class ImagesAndSimulator(httpx.AsyncBaseTransport):
    """The upstream origin serves the simulator and, under /images/, test images whose bytes a test can change."""

    def __init__(self, sim: SimulatorState) -> None:
        self.images: dict[str, bytes] = {}
        self.image_requests = 0
        self._sim = simulator_transport(sim)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/images/"):
            self.image_requests += 1
            data = self.images.get(request.url.path.removeprefix("/images/"))
            return httpx.Response(200, content=data) if data is not None else httpx.Response(404)
        return await self._sim.handle_async_request(request)


@pytest.fixture
async def rig(
    redis_client: Redis, redis_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, ImagesAndSimulator, SimulatorState]]:
    sim = fast_simulator()
    transport = ImagesAndSimulator(sim)
    settings: Settings = fast_settings(redis_url, cache_content_hashing=True, upstream_url=UPSTREAM)
    async with serve_in_process(create_app(settings, redis=redis_client, upstream_transport=transport)) as client:
        client.headers.update(key_auth(await tenant_key(client)))
        yield client, transport, sim


async def _cache_state(client: httpx.AsyncClient, image_url: str) -> str:
    body: dict[str, Any] = {"prompt": "x", "image_url": image_url, "seed": 5}
    response = await client.post(f"/queue/{I2V}", json=body)
    assert response.status_code == 200, response.text
    role = response.headers["x-gateway-cache"]
    status_url = local(response.json()["status_url"])
    while (await client.get(status_url)).json()["status"] != "COMPLETED":
        pass
    return role


async def test_the_same_image_under_two_urls_hits(
    rig: tuple[httpx.AsyncClient, ImagesAndSimulator, SimulatorState],
) -> None:
    client, images, _ = rig
    images.images = {"a.png": b"\x89PNG same pixels", "copy-of-a.png": b"\x89PNG same pixels"}
    assert await _cache_state(client, f"{UPSTREAM}/images/a.png") == "miss"
    assert await _cache_state(client, f"{UPSTREAM}/images/copy-of-a.png") == "hit"


async def test_a_changed_image_under_one_url_misses(
    rig: tuple[httpx.AsyncClient, ImagesAndSimulator, SimulatorState],
) -> None:
    client, images, _ = rig
    images.images = {"a.png": b"\x89PNG version 1"}
    assert await _cache_state(client, f"{UPSTREAM}/images/a.png") == "miss"
    assert await _cache_state(client, f"{UPSTREAM}/images/a.png") == "hit"
    images.images["a.png"] = b"\x89PNG version 2"
    assert await _cache_state(client, f"{UPSTREAM}/images/a.png") == "miss"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.png",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.8/a.png",
        "http://localhost/a.png",
    ],
)
async def test_hostile_image_urls_are_not_fetched_and_fall_back_to_url_hashing(
    rig: tuple[httpx.AsyncClient, ImagesAndSimulator, SimulatorState], url: str
) -> None:
    client, images, _ = rig
    assert await _cache_state(client, url) == "miss"
    assert await _cache_state(client, url) == "hit", "the URL itself keys the entry"
    assert images.image_requests == 0


async def test_an_unreachable_image_falls_back_to_url_hashing(
    rig: tuple[httpx.AsyncClient, ImagesAndSimulator, SimulatorState],
) -> None:
    client, images, _ = rig
    assert await _cache_state(client, f"{UPSTREAM}/images/missing.png") == "miss"
    assert await _cache_state(client, f"{UPSTREAM}/images/missing.png") == "hit"
    assert images.image_requests == 2
