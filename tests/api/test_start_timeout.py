"""fal's start deadline through the gateway (docs/protocol.md §10): ``X-Fal-Request-Timeout`` is checked as fal
checks it before anything is spent, forwarded when valid, and fal's start timeout reaches the client as fal sends it."""

from __future__ import annotations

import pytest

from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.gateway import Gateway


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
