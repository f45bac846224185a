"""Single-flight across replicas: 50 identical seeded requests at once, spread over two app instances sharing one
Redis, make exactly one upstream submit and one charge, and all 50 complete with the same video."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from service.simulator.state import SimulatorState
from tests.api.conftest import T2V
from tests.integration.conftest import replica_clients

ADMIN = {"Authorization": "Bearer admin-token-for-tests"}
SETTLED = 259_200  # 720p 16:9 5 s with audio, by fal's formula


@pytest.fixture
async def replicas(
    redis_client: Redis, redis_url: str
) -> AsyncIterator[tuple[list[httpx.AsyncClient], SimulatorState]]:
    async with replica_clients(redis_client, redis_url, processing_seconds=1.0) as pair:
        yield pair


async def test_fifty_identical_requests_over_two_replicas_make_one_submit_and_one_charge(
    replicas: tuple[list[httpx.AsyncClient], SimulatorState],
) -> None:
    (a, b), sim = replicas
    await a.post("/admin/tenants", json={"id": "acme", "name": "A", "budget": {"limit_micros": 10**9}}, headers=ADMIN)
    headers = {"Authorization": f"Key {(await a.post('/admin/tenants/acme/keys', headers=ADMIN)).json()['key']}"}
    body = {"prompt": "the same video, fifty times", "seed": 1234}

    async def one(n: int) -> tuple[str, dict[str, object]]:
        client = a if n % 2 else b
        submitted = await client.post(f"/queue/{T2V}", json=body, headers=headers)
        assert submitted.status_code == 200, submitted.text
        status_url = submitted.json()["status_url"].removeprefix("http://testserver.local")
        while (await client.get(status_url, headers=headers)).json()["status"] != "COMPLETED":
            await asyncio.sleep(0.05)
        result = await client.get(
            submitted.json()["response_url"].removeprefix("http://testserver.local"), headers=headers
        )
        assert result.status_code == 200, result.text
        return submitted.headers["x-gateway-cache"], result.json()

    outcomes = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(50))), timeout=30)

    assert sim.stats()["calls"]["submit"] == 1
    roles = [role for role, _ in outcomes]
    assert roles.count("miss") == 1, "exactly one leader"
    assert set(roles) <= {"miss", "merged", "hit"}
    videos = {str(result["video"]) for _, result in outcomes}
    assert len(videos) == 1, "every request got the same video"
    assert {result["seed"] for _, result in outcomes} == {1234}
    usage = (await a.get("/v1/usage", headers=headers)).json()
    assert (usage["spent_micros"], usage["reserved_micros"]) == (SETTLED, 0), "one charge"
    charges = (await b.get("/admin/tenants/acme/charges", headers=ADMIN)).json()["charges"]
    assert len(charges) == 1
