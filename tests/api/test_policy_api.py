"""Each per-tenant policy rule refuses the request with a fal-style 403 naming the rule, before anything is recorded,
charged or sent upstream."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.endpoints import I2V, I2V_INPUT, T2V
from tests.support.gateway import Gateway

CASES: list[tuple[dict[str, Any], str, dict[str, Any], str, str | None]] = [
    ({"allowed_endpoints": [I2V]}, T2V, {"prompt": "x"}, "allowed_endpoints", None),
    ({"max_resolution": "720p"}, T2V, {"prompt": "x", "resolution": "1080p"}, "max_resolution", "resolution"),
    ({"max_resolution": "480p"}, T2V, {"prompt": "x"}, "max_resolution", "resolution"),
    ({"max_duration": 6}, I2V, {**I2V_INPUT, "duration": "7"}, "max_duration", "duration"),
    ({"allow_audio": False}, T2V, {"prompt": "x"}, "allow_audio", "generate_audio"),
    ({"allow_audio": False}, T2V, {"prompt": "x", "generate_audio": True}, "allow_audio", "generate_audio"),
]
ALLOWED: list[tuple[dict[str, Any], str, dict[str, Any]]] = [
    ({"allowed_endpoints": [I2V]}, I2V, I2V_INPUT),
    ({"max_resolution": "720p"}, T2V, {"prompt": "x", "resolution": "720p"}),
    ({"max_duration": 6}, I2V, {**I2V_INPUT, "duration": "6"}),
    ({"allow_audio": False}, T2V, {"prompt": "x", "generate_audio": False}),
    ({"allow_audio": True}, T2V, {"prompt": "x"}),
]


async def _tenant_with(gateway: Gateway, policy: dict[str, Any]) -> dict[str, str]:
    created = await gateway.client.post(
        "/admin/tenants", json={"id": "acme", "name": "Acme", "policy": policy}, headers=gateway.admin
    )
    assert created.status_code == 201, created.text
    return await gateway.auth("acme")


@pytest.mark.parametrize(("policy", "endpoint", "body", "rule", "field"), CASES)
@pytest.mark.parametrize("mode", ["queue", "run"])
async def test_each_rule_refuses_with_its_name_and_no_upstream_call(
    gateway: Gateway,
    policy: dict[str, Any],
    endpoint: str,
    body: dict[str, Any],
    rule: str,
    field: str | None,
    mode: str,
) -> None:
    headers = await _tenant_with(gateway, policy)
    response = await gateway.client.post(f"/{mode}/{endpoint}", json=body, headers=headers)
    assert response.status_code == 403
    payload = response.json()
    assert payload["error_type"] == "policy_violation"
    assert payload["rule"] == rule
    assert payload.get("field") == field
    assert f"(policy: {rule})" in payload["detail"]
    assert response.headers["x-fal-error-type"] == "policy_violation"
    assert gateway.sim.stats()["calls"]["submit"] == 0
    assert await gateway.redis.keys("gw:v1:job:*") == []
    me = (await gateway.client.get("/v1/me", headers=headers)).json()
    assert me["usage"]["requests_last_minute"] == 0, "a refused request uses no rate allowance"


@pytest.mark.parametrize(("policy", "endpoint", "body"), ALLOWED)
async def test_requests_inside_the_policy_go_through(
    gateway: Gateway, policy: dict[str, Any], endpoint: str, body: dict[str, Any]
) -> None:
    headers = await _tenant_with(gateway, policy)
    response = await gateway.client.post(f"/queue/{endpoint}", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert gateway.sim.stats()["calls"]["submit"] == 1


async def test_a_policy_change_applies_to_the_next_request(gateway: Gateway) -> None:
    headers = await _tenant_with(gateway, {})
    assert (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).status_code == 200
    await gateway.client.patch(
        "/admin/tenants/acme", json={"policy": {"max_resolution": "480p"}}, headers=gateway.admin
    )
    refused = await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["rule"] == "max_resolution"
