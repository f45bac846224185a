"""Sandbox jobs across two replicas: each replica embeds its own sandbox simulator, and the jobs they submit are
shared through Redis, so another replica's tracker follows a job to completion and another replica cancels it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.admin import ADMIN, create_tenant, issue_key, key_auth
from tests.support.endpoints import I2V, T2V, T2V_INPUT
from tests.support.gateway import local
from tests.support.replicas import Replicas, StartReplicas
from tests.support.waiting import eventually


async def _start(replicas: StartReplicas) -> tuple[Replicas, dict[str, str]]:
    # No tracker loops: the test steps replica b's tracker itself, so replica a's never touches the jobs.
    group = await replicas(tracker_enabled=False, sandbox_queue_seconds=0.05, sandbox_processing_seconds=0.3)
    await create_tenant(group.clients[0], "sb", sandbox=True)
    return group, key_auth(await issue_key(group.clients[0], "sb"))


async def _final(client: httpx.AsyncClient, status_url: str, headers: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(status_url, headers=headers)).json()
    return body


async def test_another_replicas_tracker_completes_a_sandbox_job(replicas: StartReplicas) -> None:
    group, headers = await _start(replicas)
    a, b = group.clients
    submitted = (await a.post(f"/queue/{T2V}", json=T2V_INPUT, headers=headers)).json()
    request_id, status_url = submitted["request_id"], local(submitted["status_url"])

    async def completed_by_b() -> dict[str, Any] | None:
        await group.deps[1].tracker.process(request_id)
        body = await _final(b, status_url, headers)
        return body if body["status"] == "COMPLETED" else None

    final = await eventually(completed_by_b)
    assert "error_type" not in final, final
    result = (await b.get(local(submitted["response_url"]), headers=headers)).json()
    assert "/_sandbox/media/" in result["video"]["url"]
    assert group.sim.stats()["calls"] == dict.fromkeys(group.sim.stats()["calls"], 0), "the real upstream: nothing"
    usage = (await a.get("/admin/tenants/sb/usage", headers=ADMIN)).json()
    assert usage["spent_micros"] == 0


async def test_another_replica_cancels_a_sandbox_job(replicas: StartReplicas) -> None:
    group, headers = await _start(replicas)
    a, b = group.clients
    submitted = (await a.post(f"/queue/{T2V}", json=T2V_INPUT, headers=headers)).json()
    request_id = submitted["request_id"]

    async def upstream_id_recorded() -> bool:
        job = await group.deps[0].job_store.get(request_id)
        return job is not None and job.upstream_id is not None

    await eventually(upstream_id_recorded)
    cancelled = await b.put(local(submitted["cancel_url"]), headers=headers)
    assert cancelled.status_code == 202, cancelled.text

    async def cancelled_by_a() -> dict[str, Any] | None:
        await group.deps[0].tracker.process(request_id)  # a's sandbox reads b's cancellation back from Redis
        body = await _final(a, local(submitted["status_url"]), headers)
        return body if body["status"] == "COMPLETED" else None

    assert (await eventually(cancelled_by_a))["error_type"] == "client_cancelled"


async def test_a_sandbox_upload_to_one_replica_is_served_and_hashed_by_another(replicas: StartReplicas) -> None:
    group = await replicas(tracker_enabled=False, cache_content_hashing=True)
    await create_tenant(group.clients[0], "sb", sandbox=True)
    headers = key_auth(await issue_key(group.clients[0], "sb"))
    a, b = group.clients
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    answer = (await a.post("/rest/storage/upload/initiate", json={"content_type": "image/png"}, headers=headers)).json()
    assert (await a.put(local(answer["upload_url"]), content=png)).status_code == 200
    served = await b.get(httpx.URL(answer["file_url"]).raw_path.decode())
    assert (served.status_code, served.headers["content-type"], served.content) == (200, "image/png", png)
    body = {"prompt": "a cat waves", "image_url": answer["file_url"], "seed": 5}
    submitted = await b.post(f"/queue/{I2V}", json=body, headers=headers)
    renamed = await a.post(f"/queue/{I2V}", json={**body, "image_url": answer["file_url"] + "?copy=1"}, headers=headers)
    assert submitted.status_code == renamed.status_code == 200, submitted.text
    # One cache key for two URLs: both replicas read the same bytes (from Redis) to hash them.
    assert submitted.headers["x-gateway-cache-key"] == renamed.headers["x-gateway-cache-key"]
    assert group.sim.stats()["calls"] == dict.fromkeys(group.sim.stats()["calls"], 0), "the real upstream: nothing"
