"""Budgets as clients and operators see them: estimates, reservations, settlement, release, 402, usage, the ledger,
period rollover and alerts."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from service import keys
from service.simulator.faults import FaultRule
from tests.support.endpoints import I2V, I2V_INPUT, T2V
from tests.support.gateway import Gateway

# 720p 16:9 5 s with audio: the estimate counts 121 frames, settlement fal's 120 (fal's published $0.2592).
ESTIMATE_720P_5S = 261_360
SETTLED_720P_5S = 259_200
# aspect_ratio auto at 720p is estimated at the tier's largest size, 1112x834.
ESTIMATE_720P_AUTO_5S = 263_008  # ceil(1112 * 834 * 121 / 1024 * 2.4)


async def _tenant(gateway: Gateway, budget: dict[str, Any] | None = None, **policy: Any) -> dict[str, str]:
    body: dict[str, Any] = {"id": "acme", "name": "Acme", "policy": policy}
    if budget is not None:
        body["budget"] = budget
    assert (await gateway.client.post("/admin/tenants", json=body, headers=gateway.admin)).status_code == 201
    return await gateway.auth("acme")


async def _usage(gateway: Gateway) -> dict[str, Any]:
    response = await gateway.client.get("/admin/tenants/acme/usage", headers=gateway.admin)
    assert response.status_code == 200, response.text
    usage: dict[str, Any] = response.json()
    return usage


async def test_estimate_prices_a_request_without_submitting_or_reserving(gateway: Gateway) -> None:
    headers = await _tenant(gateway, {"limit_micros": 10_000_000, "period": "month"})
    response = await gateway.client.post(f"/v1/estimate/{T2V}", json={"prompt": "x"}, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["tokens"] == 108_900
    assert body["cost_micros"] == ESTIMATE_720P_5S
    assert body["cost_usd"] == "0.261360"
    assert (body["width"], body["height"], body["frames"]) == (1280, 720, 121)
    silent = await gateway.client.post(
        f"/v1/estimate/{T2V}", json={"prompt": "x", "generate_audio": False}, headers=headers
    )
    assert silent.json()["cost_micros"] == ESTIMATE_720P_5S // 2
    assert gateway.sim.stats()["calls"]["submit"] == 0
    assert (await _usage(gateway))["reserved_micros"] == 0


@pytest.mark.parametrize(("path", "status"), [(f"/v1/estimate/{T2V}", 422), ("/v1/estimate/fal-ai/flux/dev", 404)])
async def test_estimate_validates_like_a_submit(gateway: Gateway, path: str, status: int) -> None:
    headers = await _tenant(gateway)
    assert (await gateway.client.post(path, json={"duration": "3"}, headers=headers)).status_code == status


async def test_estimate_needs_a_tenant_key(gateway: Gateway) -> None:
    assert (await gateway.client.post(f"/v1/estimate/{T2V}", json={"prompt": "x"})).status_code == 401


async def test_submit_reports_and_reserves_its_estimate_then_settles_by_the_fal_formula(gateway: Gateway) -> None:
    headers = await _tenant(gateway, {"limit_micros": 10_000_000, "period": "month"})
    gateway.sim.configure(processing_seconds=30)
    response = await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)
    assert response.headers["x-gateway-cost-micros"] == str(ESTIMATE_720P_5S)
    usage = await _usage(gateway)
    assert (usage["reserved_micros"], usage["spent_micros"]) == (ESTIMATE_720P_5S, 0)
    assert usage["remaining_micros"] == 10_000_000 - ESTIMATE_720P_5S

    gateway.sim.configure(processing_seconds=0.1)
    quick = await gateway.client.post(f"/queue/{T2V}", json={"prompt": "y"}, headers=headers)
    await gateway.wait_status(quick.json()["status_url"])
    usage = await _usage(gateway)
    assert usage["spent_micros"] == SETTLED_720P_5S
    assert usage["reserved_micros"] == ESTIMATE_720P_5S, "only the finished job was settled"
    assert usage["spent_usd"] == "0.259200"
    assert usage["breakdown"] == [
        {
            "endpoint_id": T2V,
            "resolution": "720p",
            "audio": True,
            "requests": 1,
            "cost_micros": SETTLED_720P_5S,
            "cost_usd": "0.259200",
        }
    ]
    ledger = (await gateway.client.get("/admin/tenants/acme/charges", headers=gateway.admin)).json()
    (charge,) = ledger["charges"]
    assert charge["request_id"] == quick.json()["request_id"]
    assert (charge["width"], charge["height"], charge["frames"], charge["tokens"]) == (1280, 720, 120, 108_000)
    assert charge["estimate_micros"] == ESTIMATE_720P_5S
    assert charge["size_source"] == "table"


async def test_auto_aspect_ratio_is_settled_at_the_size_read_from_the_video(gateway: Gateway) -> None:
    headers = await _tenant(gateway, {"limit_micros": 10_000_000})
    response = await gateway.client.post(f"/queue/{I2V}", json={**I2V_INPUT, "aspect_ratio": "auto"}, headers=headers)
    assert response.headers["x-gateway-cost-micros"] == str(ESTIMATE_720P_AUTO_5S)
    await gateway.wait_status(response.json()["status_url"])
    (charge,) = (await gateway.client.get("/admin/tenants/acme/charges", headers=gateway.admin)).json()["charges"]
    assert charge["size_source"] == "probe"
    assert (charge["width"], charge["height"]) == (1280, 720), "the simulator renders auto as 16:9"
    assert charge["cost_micros"] == SETTLED_720P_5S


@pytest.mark.parametrize(
    ("failure", "submit_status"),
    [("job_fails", 200), ("cancelled", 200), ("submit_refused", 503), ("submit_timeout", 504)],
)
async def test_a_reservation_is_released_in_full_when_fal_does_not_bill(
    gateway: Gateway, failure: str, submit_status: int
) -> None:
    headers = await _tenant(gateway, {"limit_micros": 10_000_000})
    if failure == "job_fails":
        gateway.sim.add_fault(FaultRule(op="job", kind="fail", status=500))
    elif failure == "submit_refused":
        gateway.sim.add_fault(FaultRule(op="submit", kind="http_error", status=503))
    elif failure == "submit_timeout":
        gateway.sim.add_fault(FaultRule(op="submit", kind="timeout", delay_seconds=3))
    else:
        gateway.sim.configure(processing_seconds=30)
    response = await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)
    assert response.status_code == submit_status, response.text
    if failure == "cancelled":
        await gateway.client.put(response.json()["cancel_url"], headers=headers)
    if submit_status == 200:
        await gateway.wait_status(response.json()["status_url"])
    usage = await _usage(gateway)
    assert (usage["reserved_micros"], usage["spent_micros"]) == (0, 0)
    assert (await gateway.client.get("/admin/tenants/acme/charges", headers=gateway.admin)).json()["charges"] == []


async def test_an_estimate_that_does_not_fit_is_refused_with_402_and_costs_nothing(gateway: Gateway) -> None:
    headers = await _tenant(gateway, {"limit_micros": ESTIMATE_720P_5S + 1000, "period": "day"})
    gateway.sim.configure(processing_seconds=30)
    assert (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).status_code == 200
    refused = await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)
    assert refused.status_code == 402
    body = refused.json()
    assert body["error_type"] == "budget_exceeded"
    assert body["limit_micros"] == ESTIMATE_720P_5S + 1000
    assert (body["spent_micros"], body["reserved_micros"]) == (0, ESTIMATE_720P_5S)
    assert body["estimate_micros"] == ESTIMATE_720P_5S
    assert body["remaining_micros"] == 1000
    assert body["period_end"].endswith("T00:00:00Z")
    assert refused.headers["x-fal-error-type"] == "budget_exceeded"
    assert gateway.sim.stats()["calls"]["submit"] == 1
    assert (await _usage(gateway))["reserved_micros"] == ESTIMATE_720P_5S
    me = (await gateway.client.get("/v1/me", headers=headers)).json()
    assert me["usage"]["requests_last_minute"] == 1, "a 402 takes no rate or concurrency slot either"
    cheaper = {"prompt": "x", "resolution": "480p", "duration": "4", "generate_audio": False}
    assert (await gateway.client.post(f"/queue/{T2V}", json=cheaper, headers=headers)).status_code == 402


async def test_no_budget_means_unlimited_but_usage_is_still_reported(gateway: Gateway) -> None:
    headers = await _tenant(gateway)
    response = await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)
    await gateway.wait_status(response.json()["status_url"])
    usage = (await gateway.client.get("/v1/usage", headers=headers)).json()
    assert usage["limit_micros"] is None
    assert usage["remaining_micros"] is None
    assert usage["spent_micros"] == SETTLED_720P_5S
    assert usage["period"] == "month"


async def test_a_budget_can_be_set_changed_and_removed(gateway: Gateway) -> None:
    await _tenant(gateway)
    patched = await gateway.client.patch(
        "/admin/tenants/acme",
        json={"budget": {"limit_micros": 5_000_000, "period": "week", "soft_limit_micros": 4_000_000}},
        headers=gateway.admin,
    )
    assert patched.json()["budget"] == {"limit_micros": 5_000_000, "period": "week", "soft_limit_micros": 4_000_000}
    usage = await _usage(gateway)
    assert usage["period"] == "week"
    assert usage["limit_usd"] == "5.000000"
    lowered = await gateway.client.patch(
        "/admin/tenants/acme", json={"budget": {"limit_micros": 1}}, headers=gateway.admin
    )
    assert lowered.status_code == 422, "a soft limit above the hard limit is refused"
    removed = await gateway.client.patch("/admin/tenants/acme", json={"budget": None}, headers=gateway.admin)
    assert removed.json()["budget"] is None


async def test_own_usage_shows_only_the_callers_tenant(gateway: Gateway) -> None:
    headers = await _tenant(gateway, {"limit_micros": 1_000_000})
    await gateway.client.post(
        "/admin/tenants",
        json={"id": "globex", "name": "G", "budget": {"limit_micros": 7_777_777}},
        headers=gateway.admin,
    )
    response = await gateway.client.get("/v1/usage", headers=headers)
    assert response.json()["tenant_id"] == "acme"
    assert "7777777" not in response.text


async def test_a_new_calendar_period_starts_from_zero_and_the_old_ledger_stays(gateway: Gateway) -> None:
    headers = await _tenant(gateway, {"limit_micros": 10_000_000, "period": "day"})
    response = await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)
    await gateway.wait_status(response.json()["status_url"])
    before = await _usage(gateway)
    assert before["spent_micros"] == SETTLED_720P_5S
    gateway.clock.advance(86_400)
    after = await _usage(gateway)
    assert after["period_id"] != before["period_id"]
    assert after["period_start"] == before["period_end"]
    assert (after["spent_micros"], after["reserved_micros"]) == (0, 0)
    old = await gateway.client.get(
        "/admin/tenants/acme/charges", params={"period": before["period_id"]}, headers=gateway.admin
    )
    assert [c["request_id"] for c in old.json()["charges"]] == [response.json()["request_id"]]


async def test_alerts_fire_once_per_threshold_per_period(gateway: Gateway) -> None:
    limit = 4 * ESTIMATE_720P_5S
    headers = await _tenant(gateway, {"limit_micros": limit, "soft_limit_micros": ESTIMATE_720P_5S})
    gateway.sim.configure(processing_seconds=30)
    with capture_logs() as logs:
        for _ in range(4):
            assert (
                await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)
            ).status_code == 200
    alerts = [entry["alert"] for entry in logs if entry["event"] == "budget_alert"]
    assert sorted(alerts) == ["100", "80", "90", "soft_limit"]
    metrics = (await gateway.client.get("/metrics")).text
    assert 'gateway_budget_alerts_total{alert="90",tenant="acme"} 1.0' in metrics
    assert 'gateway_budget_remaining_micros{tenant="acme"} 0.0' in metrics
    assert 'gateway_budget_rejections_total{tenant="acme"}' not in metrics
    assert (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).status_code == 402
    assert 'gateway_budget_rejections_total{tenant="acme"} 1.0' in (await gateway.client.get("/metrics")).text
    fired = await gateway.redis.hgetall(keys.budget_alerts("acme", (await _usage(gateway))["period_id"]))
    assert sorted(fired) == ["100", "80", "90", "soft_limit"]


async def test_a_scrape_reads_every_tenants_money_from_redis_at_that_moment(gateway: Gateway) -> None:
    await _tenant(gateway, {"limit_micros": 10_000_000})
    period_id = (await _usage(gateway))["period_id"]
    # Spend that another replica settled a moment ago: only Redis knows it, and no reconcile round has run since.
    await gateway.redis.hincrby(keys.budget("acme", period_id), "spent", 4_321_000)
    scraped = (await gateway.client.get("/metrics")).text
    assert 'gateway_budget_spent_micros{tenant="acme"} 4.321e+06' in scraped
    assert 'gateway_budget_remaining_micros{tenant="acme"} 5.679e+06' in scraped
    assert 'gateway_budget_limit_micros{tenant="acme"} 1e+07' in scraped
