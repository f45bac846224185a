"""A cacheable request refused at admission (402, 429) holds nothing afterwards, its in-flight marker included: an
identical retry is a request of its own, admitted and submitted, never merged into one that will never run."""

from __future__ import annotations

from typing import Any

from service import keys
from tests.support.endpoints import T2V
from tests.support.gateway import Gateway

SEEDED: dict[str, Any] = {"prompt": "a red fox", "seed": 42}


async def _tenant(gateway: Gateway, **fields: Any) -> dict[str, str]:
    body: dict[str, Any] = {"id": "acme", "name": "Acme", **fields}
    assert (await gateway.client.post("/admin/tenants", json=body, headers=gateway.admin)).status_code == 201
    return await gateway.auth("acme")


async def test_a_retry_after_a_402_is_submitted_not_merged_into_the_refused_request(gateway: Gateway) -> None:
    headers = await _tenant(gateway, budget={"limit_micros": 1000, "period": "month"})
    refused = await gateway.client.post(f"/queue/{T2V}", json=SEEDED, headers=headers)
    assert refused.status_code == 402
    leftovers = [k async for k in gateway.redis.scan_iter(match=f"{keys.PREFIX}:cache:*:leader")]
    # The operator raises the budget; the client retries the very same request.
    patched = await gateway.client.patch(
        "/admin/tenants/acme", json={"budget": {"limit_micros": 10_000_000}}, headers=gateway.admin
    )
    assert patched.status_code == 200, patched.text
    retry = await gateway.client.post(f"/queue/{T2V}", json=SEEDED, headers=headers)
    assert retry.status_code == 200, retry.text
    gateway.clock.advance(gateway.settings.submit_grace_seconds + 1)  # the tracker's backstop for lost leaders
    final = await gateway.wait_status(retry.json()["status_url"], timeout=15)
    assert (retry.headers.get("x-gateway-cache"), final.get("error_type")) == ("miss", None), (
        "the retry was merged into the refused request and failed",
        retry.headers.get("x-gateway-cache"),
        final,
    )
    assert leftovers == [], "the refused request left its in-flight marker behind"
    assert gateway.sim.stats()["calls"]["submit"] == 1


async def test_a_retry_after_a_429_is_submitted_not_merged_into_the_refused_request(gateway: Gateway) -> None:
    headers = await _tenant(gateway, policy={"max_concurrent": 1})
    gateway.sim.configure(processing_seconds=30)
    busy = await gateway.client.post(f"/queue/{T2V}", json={"prompt": "other"}, headers=headers)
    assert busy.status_code == 200
    refused = await gateway.client.post(f"/queue/{T2V}", json=SEEDED, headers=headers)
    assert refused.status_code == 429
    retry = await gateway.client.post(f"/queue/{T2V}", json=SEEDED, headers=headers)
    assert retry.status_code == 429, (retry.status_code, retry.headers.get("x-gateway-cache"))
