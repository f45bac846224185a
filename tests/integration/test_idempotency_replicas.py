"""One Idempotency-Key sent at once to two replicas, many times: one job, one upstream submit, one request id."""

from __future__ import annotations

import asyncio

from tests.support.admin import ADMIN, create_tenant, issue_key, key_auth
from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.replicas import StartReplicas


async def test_concurrent_duplicates_on_two_replicas_make_one_job(replicas: StartReplicas) -> None:
    pair = await replicas()
    a, b = pair.clients
    await create_tenant(a, "acme")
    headers = key_auth(await issue_key(a, "acme")) | {"Idempotency-Key": "checkout-42"}
    answers = await asyncio.gather(
        *(client.post(f"/queue/{T2V}", json=T2V_INPUT, headers=headers) for client in [a, b] * 10)
    )
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.json()["request_id"] for answer in answers}) == 1
    assert pair.sim.stats()["calls"]["submit"] == 1
    history = await a.get("/admin/tenants/acme/requests", headers=ADMIN)
    assert len(history.json()["requests"]) == 1, "one job recorded, whichever replica won"
