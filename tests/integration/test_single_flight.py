"""Single-flight across replicas: 50 identical seeded requests at once, spread over two app instances sharing one
Redis, make exactly one upstream submit and one charge, and all 50 complete with the same video."""

from __future__ import annotations

import asyncio

import httpx

from tests.support.admin import ADMIN, key_auth, tenant_key
from tests.support.clocks import ManualClock
from tests.support.endpoints import T2V
from tests.support.gateway import fast_simulator, local
from tests.support.redis_cluster import MODES
from tests.support.replicas import StartReplicas
from tests.support.waiting import eventually

REDIS_MODES = MODES
SETTLED = 259_200  # 720p 16:9 5 s with audio, by fal's formula


async def test_fifty_identical_requests_over_two_replicas_make_one_submit_and_one_charge(
    replicas: StartReplicas,
) -> None:
    # The upstream job stands still until every request is in, so each one after the first joins it ("merged"):
    # none can arrive after it finished and be a plain cache hit.
    upstream_clock = ManualClock()
    group = await replicas(sim=fast_simulator(upstream_clock))
    a, b = group.clients
    headers = key_auth(await tenant_key(a, budget={"limit_micros": 10**9}))
    body = {"prompt": "the same video, fifty times", "seed": 1234}

    async def submit(client: httpx.AsyncClient) -> tuple[httpx.AsyncClient, httpx.Response]:
        submitted = await client.post(f"/queue/{T2V}", json=body, headers=headers)
        assert submitted.status_code == 200, submitted.text
        return client, submitted

    submits = await asyncio.gather(*(submit(a if n % 2 else b) for n in range(50)))
    roles = [submitted.headers["x-gateway-cache"] for _, submitted in submits]
    assert sorted(roles) == ["merged"] * 49 + ["miss"], "exactly one leader; everyone else joined its job"
    upstream_clock.advance(10)

    async def result(client: httpx.AsyncClient, submitted: httpx.Response) -> dict[str, object]:
        async def completed() -> bool:
            status = await client.get(local(submitted.json()["status_url"]), headers=headers)
            return bool(status.json()["status"] == "COMPLETED")

        await eventually(completed)
        response = await client.get(local(submitted.json()["response_url"]), headers=headers)
        assert response.status_code == 200, response.text
        output: dict[str, object] = response.json()
        return output

    results = await asyncio.gather(*(result(client, submitted) for client, submitted in submits))

    assert group.sim.stats()["calls"]["submit"] == 1
    assert len({str(output["video"]) for output in results}) == 1, "every request got the same video"
    assert {output["seed"] for output in results} == {1234}
    usage = (await a.get("/v1/usage", headers=headers)).json()
    assert (usage["spent_micros"], usage["reserved_micros"]) == (SETTLED, 0), "one charge"
    charges = (await b.get("/admin/tenants/acme/charges", headers=ADMIN)).json()["charges"]
    assert len(charges) == 1
