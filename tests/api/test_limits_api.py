"""Rate and concurrency limits as clients see them: 429 with Retry-After, and slots that come back when jobs end."""

from __future__ import annotations

from typing import Any

from service import keys
from service.simulator.faults import FaultRule
from tests.support.endpoints import T2V
from tests.support.gateway import Gateway
from tests.support.waiting import eventually


async def _tenant(gateway: Gateway, **policy: Any) -> dict[str, str]:
    await gateway.client.post(
        "/admin/tenants", json={"id": "acme", "name": "Acme", "policy": policy}, headers=gateway.admin
    )
    return await gateway.auth("acme")


async def test_requests_per_minute_answers_429_with_retry_after(gateway: Gateway) -> None:
    headers = await _tenant(gateway, requests_per_minute=3)
    gateway.clock.freeze()  # all three are admitted at the same instant, and refused at it
    codes = [
        (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 200]
    refused = await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60", "until the first of the three leaves the one-minute window"
    assert refused.json()["rule"] == "requests_per_minute"
    assert refused.json()["error_type"] == "rate_limited"
    assert gateway.sim.stats()["calls"]["submit"] == 3
    gateway.clock.advance(61)
    assert (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).status_code == 200


async def test_the_concurrency_slot_returns_when_the_job_completes(gateway: Gateway) -> None:
    headers = await _tenant(gateway, max_concurrent=1)
    first = (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).json()
    refused = await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["rule"] == "max_concurrent"
    assert refused.headers["retry-after"] == "1"
    await gateway.wait_status(first["status_url"])
    assert (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).status_code == 200


async def test_the_slot_returns_when_the_job_fails_or_is_cancelled(gateway: Gateway) -> None:
    headers = await _tenant(gateway, max_concurrent=1)
    gateway.sim.add_fault(FaultRule(op="job", kind="fail", status=500))
    failed = (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).json()
    await gateway.wait_status(failed["status_url"])
    gateway.sim.configure(processing_seconds=30)
    running = (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).json()
    await gateway.client.put(running["cancel_url"], headers=headers)
    await gateway.wait_status(running["status_url"])
    assert (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).status_code == 200


async def test_the_slot_returns_when_the_upstream_submit_fails(gateway: Gateway) -> None:
    headers = await _tenant(gateway, max_concurrent=1)
    gateway.sim.add_fault(FaultRule(op="submit", kind="http_error", status=503))
    assert (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).status_code == 503
    assert (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).status_code == 200


async def test_a_slot_whose_job_nobody_follows_frees_itself_when_its_lease_runs_out(gateway: Gateway) -> None:
    headers = await _tenant(gateway, max_concurrent=1)
    gateway.sim.configure(processing_seconds=600)
    first = (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).json()
    # Simulate every replica following the job dying: nothing renews its lease any more.
    await gateway.redis.zrem(keys.tracker_due(), first["request_id"])
    assert (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).status_code == 429
    lease = gateway.settings.concurrency_lease_seconds + gateway.settings.upstream_submit_timeout_seconds
    gateway.clock.advance(lease + gateway.settings.tracker_lease_seconds + 1)
    assert (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).status_code == 200


async def test_me_reports_live_usage(gateway: Gateway) -> None:
    headers = await _tenant(gateway, requests_per_minute=10, max_concurrent=5)
    gateway.sim.configure(processing_seconds=30)
    for _ in range(2):
        await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)

    async def usage() -> dict[str, int] | None:
        body: dict[str, int] = (await gateway.client.get("/v1/me", headers=headers)).json()["usage"]
        return body if body == {"requests_last_minute": 2, "in_flight": 2} else None

    assert await eventually(usage)
