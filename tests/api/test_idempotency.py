"""Idempotency keys: a retried submit or run with the same key and body gets the original job, never a second
submit or charge; the same key with another body is a 422; keys are per tenant and freed by a refusal."""

from __future__ import annotations

from typing import Any

import httpx

from service.simulator.faults import FaultRule
from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.gateway import Gateway, local
from tests.support.waiting import eventually


async def _post(
    gateway: Gateway, key: str | None, body: dict[str, Any], *, tenant: str = "acme", run: bool = False
) -> httpx.Response:
    headers = await gateway.auth(tenant) | ({"Idempotency-Key": key} if key is not None else {})
    return await gateway.client.post(f"/{'run' if run else 'queue'}/{T2V}", json=body, headers=headers)


async def _spent(gateway: Gateway, tenant: str = "acme") -> int:
    usage = (await gateway.client.get(f"/admin/tenants/{tenant}/usage", headers=gateway.admin)).json()
    spent: int = usage["spent_micros"]
    return spent


async def test_the_same_key_and_body_answers_the_original_job_and_pays_once(gateway: Gateway) -> None:
    first = await _post(gateway, "order-1", T2V_INPUT)
    again = await _post(gateway, "order-1", T2V_INPUT)
    assert first.status_code == again.status_code == 200
    assert again.json()["request_id"] == first.json()["request_id"]
    await gateway.wait_status(local(first.json()["status_url"]))
    after = await _post(gateway, "order-1", T2V_INPUT)
    assert after.json()["request_id"] == first.json()["request_id"]
    assert after.json()["status"] == "COMPLETED"
    assert gateway.sim.stats()["calls"]["submit"] == 1

    async def settled() -> bool:
        return await _spent(gateway) > 0

    await eventually(settled)
    charges = await gateway.client.get("/admin/tenants/acme/charges", headers=gateway.admin)
    assert [c["request_id"] for c in charges.json()["charges"]] == [first.json()["request_id"]], "charged once"


async def test_the_same_key_with_another_body_is_a_422(gateway: Gateway) -> None:
    assert (await _post(gateway, "order-2", T2V_INPUT)).status_code == 200
    other = await _post(gateway, "order-2", {**T2V_INPUT, "prompt": "something else"})
    assert other.status_code == 422
    assert other.json()["detail"][0]["type"] == "idempotency_conflict"
    assert gateway.sim.stats()["calls"]["submit"] == 1


async def test_default_equivalent_bodies_are_the_same_request(gateway: Gateway) -> None:
    first = await _post(gateway, "order-3", T2V_INPUT)
    same = await _post(gateway, "order-3", {**T2V_INPUT, "duration": "5", "generate_audio": True})
    assert same.json()["request_id"] == first.json()["request_id"]


async def test_keys_are_per_tenant(gateway: Gateway) -> None:
    mine = await _post(gateway, "shared-key", T2V_INPUT)
    theirs = await _post(gateway, "shared-key", T2V_INPUT, tenant="globex")
    assert mine.json()["request_id"] != theirs.json()["request_id"]
    assert gateway.sim.stats()["calls"]["submit"] == 2


async def test_a_refused_request_gives_its_key_back(gateway: Gateway) -> None:
    gateway.sim.add_fault(FaultRule(op="submit", kind="http_error", status=400, body={"detail": "no"}))
    refused = await _post(gateway, "order-4", T2V_INPUT)
    assert refused.status_code == 400
    await gateway.client.post(
        "/admin/tenants", json={"id": "poor", "name": "P", "budget": {"limit_micros": 1}}, headers=gateway.admin
    )
    broke = await _post(gateway, "order-5", T2V_INPUT, tenant="poor")
    assert broke.status_code == 402
    await gateway.client.patch("/admin/tenants/poor", json={"budget": None}, headers=gateway.admin)
    retried = await _post(gateway, "order-5", T2V_INPUT, tenant="poor")
    assert retried.status_code == 200, "the 402 never became a job, so the key was free again"


async def test_run_with_a_key_answers_the_original_result(gateway: Gateway) -> None:
    first = await _post(gateway, "run-1", {**T2V_INPUT, "seed": 3}, run=True)
    again = await _post(gateway, "run-1", {**T2V_INPUT, "seed": 3}, run=True)
    assert first.status_code == again.status_code == 200
    assert again.headers["x-fal-request-id"] == first.headers["x-fal-request-id"]
    assert again.json() == first.json()
    assert gateway.sim.stats()["calls"]["submit"] == 1


async def test_a_malformed_key_is_a_422(gateway: Gateway) -> None:
    assert (await _post(gateway, "x" * 256, T2V_INPUT)).status_code == 422
    assert (await _post(gateway, "  ", T2V_INPUT)).status_code == 422
    assert gateway.sim.stats()["calls"]["submit"] == 0
