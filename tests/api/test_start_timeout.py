"""fal's start deadline through the gateway (docs/protocol.md §10): ``X-Fal-Request-Timeout`` is checked as fal
checks it before anything is spent, forwarded when valid, and fal's start timeout reaches the client as fal sends it."""

from __future__ import annotations

import pytest

from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.gateway import Gateway, local


@pytest.mark.parametrize("route", ["queue", "run"])
@pytest.mark.parametrize("value", ["soon", "0.1", "-3", "inf"])
async def test_a_bad_start_timeout_is_a_400_that_costs_nothing(gateway: Gateway, route: str, value: str) -> None:
    headers = {**await gateway.auth(), "X-Fal-Request-Timeout": value}
    refused = await gateway.client.post(f"/{route}/{T2V}", json=T2V_INPUT, headers=headers)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error_type"] == "bad_request"
    assert "X-Fal-Request-Timeout" in refused.json()["detail"]
    assert refused.headers["x-fal-error-type"] == "bad_request"
    assert gateway.sim.stats()["calls"]["submit"] == 0
    usage = (await gateway.client.get("/admin/tenants/acme/usage", headers=gateway.admin)).json()
    assert (usage["reserved_micros"], usage["spent_micros"]) == (0, 0)
    rejected = gateway.metrics.registry.get_sample_value(
        "gateway_requests_rejected_total", {"reason": "invalid_header"}
    )
    assert rejected == 1


async def test_a_job_past_its_start_deadline_ends_as_fal_ends_it_and_costs_nothing(gateway: Gateway) -> None:
    gateway.sim.configure(queue_seconds=30)
    headers = {**await gateway.auth(), "X-Fal-Request-Timeout": "0.3"}
    submitted = await gateway.client.post(f"/queue/{T2V}", json=T2V_INPUT, headers=headers)
    assert submitted.status_code == 200, submitted.text
    final = await gateway.wait_status(local(submitted.json()["status_url"]))
    assert (final["error"], final["error_type"]) == ("Request timed out", "request_timeout")
    result = await gateway.client.get(local(submitted.json()["response_url"]), headers=headers)
    assert result.status_code == 504
    assert result.json() == {"detail": "Request timed out", "error_type": "request_timeout"}
    assert result.headers["x-fal-request-timeout-type"] == "user", "fal's marker reaches the client"
    assert result.headers["x-fal-error-type"] == "request_timeout"
    usage = (await gateway.client.get("/admin/tenants/acme/usage", headers=gateway.admin)).json()
    assert (usage["reserved_micros"], usage["spent_micros"]) == (0, 0), "fal bills no request that never ran"


async def test_a_run_past_its_start_deadline_answers_fals_504(gateway: Gateway) -> None:
    gateway.sim.configure(queue_seconds=30)
    headers = {**await gateway.auth(), "X-Fal-Request-Timeout": "0.3"}
    answer = await gateway.client.post(f"/run/{T2V}", json=T2V_INPUT, headers=headers)
    assert answer.status_code == 504, answer.text
    assert answer.json()["error_type"] == "request_timeout"
    assert answer.headers["x-fal-request-timeout-type"] == "user"


async def test_merged_requests_end_with_their_leaders_start_timeout(gateway: Gateway) -> None:
    gateway.sim.configure(queue_seconds=30)
    headers = {**await gateway.auth(), "X-Fal-Request-Timeout": "0.3"}
    body = {**T2V_INPUT, "seed": 5}
    leader = await gateway.client.post(f"/queue/{T2V}", json=body, headers=headers)
    follower = await gateway.client.post(f"/queue/{T2V}", json=body, headers=headers)
    assert follower.headers["x-gateway-cache"] == "merged"
    for submitted in (leader, follower):
        await gateway.wait_status(local(submitted.json()["status_url"]))
        result = await gateway.client.get(local(submitted.json()["response_url"]), headers=headers)
        assert (result.status_code, result.headers.get("x-fal-request-timeout-type")) == (504, "user")
