"""The result cache as clients see it: pay once for the same seeded request, never across tenants."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.app import create_app
from service.simulator.faults import FaultRule
from tests.support.endpoints import I2V, I2V_INPUT, T2V
from tests.support.gateway import Gateway, serve_in_process, simulator_transport
from tests.support.waiting import eventually

SEEDED: dict[str, Any] = {"prompt": "a red fox", "seed": 42}


async def _done(gateway: Gateway, response: httpx.Response, tenant: str = "acme") -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    await gateway.wait_status(body["status_url"], tenant=tenant)
    result = await gateway.client.get(body["response_url"], headers=await gateway.auth(tenant))
    return {"submit": response, "result": result, "body": body}


async def _submit(
    gateway: Gateway,
    body: dict[str, Any],
    *,
    endpoint: str = T2V,
    tenant: str = "acme",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await gateway.client.post(
        f"/queue/{endpoint}", json=body, headers={**await gateway.auth(tenant), **(headers or {})}
    )


def _submits(gateway: Gateway) -> int:
    calls: int = gateway.sim.stats()["calls"]["submit"]
    return calls


async def test_the_second_identical_seeded_request_is_a_free_hit(gateway: Gateway) -> None:
    first = await _done(gateway, await _submit(gateway, SEEDED))
    assert first["submit"].headers["x-gateway-cache"] == "miss"
    second = await _submit(gateway, SEEDED)
    assert second.status_code == 200
    assert second.headers["x-gateway-cache"] == "hit"
    assert second.headers["x-gateway-cost-micros"] == "0"
    assert second.headers["x-gateway-cache-key"] == first["submit"].headers["x-gateway-cache-key"]
    body = second.json()
    assert body["request_id"] != first["body"]["request_id"]
    assert body["status"] == "COMPLETED"
    result = await gateway.client.get(body["response_url"], headers=await gateway.auth())
    assert result.headers["x-gateway-cache"] == "hit"
    assert result.json() == first["result"].json()
    assert result.json()["seed"] == 42
    assert _submits(gateway) == 1
    status = await gateway.client.get(body["status_url"], headers=await gateway.auth())
    assert (status.status_code, status.json()["status"]) == (200, "COMPLETED")


async def test_a_hit_through_run_returns_the_result_at_once(gateway: Gateway) -> None:
    await _done(gateway, await _submit(gateway, SEEDED))
    run = await gateway.client.post(f"/run/{T2V}", json=SEEDED, headers=await gateway.auth())
    assert run.status_code == 200
    assert run.headers["x-gateway-cache"] == "hit"
    assert run.json()["seed"] == 42
    assert _submits(gateway) == 1


@pytest.mark.parametrize("body", [{"prompt": "a red fox"}, {"prompt": "a red fox", "seed": -1}])
async def test_requests_without_a_seed_always_go_upstream(gateway: Gateway, body: dict[str, Any]) -> None:
    for _ in range(2):
        response = await _done(gateway, await _submit(gateway, body))
        assert "x-gateway-cache" not in response["submit"].headers
    assert _submits(gateway) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "a blue fox"},
        {"seed": 43},
        {"resolution": "480p"},
        {"duration": "6"},
        {"aspect_ratio": "1:1"},
        {"camera_fixed": True},
        {"generate_audio": False},
        {"enable_safety_checker": False},
    ],
)
async def test_any_single_field_change_misses(gateway: Gateway, change: dict[str, Any]) -> None:
    await _done(gateway, await _submit(gateway, SEEDED))
    response = await _submit(gateway, {**SEEDED, **change})
    assert response.headers["x-gateway-cache"] == "miss"
    assert _submits(gateway) == 2


@pytest.mark.parametrize(
    "change", [{"image_url": "https://example.com/other.png"}, {"end_image_url": "https://example.com/end.png"}]
)
async def test_image_changes_miss(gateway: Gateway, change: dict[str, Any]) -> None:
    body = {**I2V_INPUT, "seed": 7}
    await _done(gateway, await _submit(gateway, body, endpoint=I2V))
    assert (await _submit(gateway, {**body, **change}, endpoint=I2V)).headers["x-gateway-cache"] == "miss"


@pytest.mark.parametrize(
    "equivalent",
    [
        {**SEEDED, "duration": "5"},
        {**SEEDED, "generate_audio": True},
        {**SEEDED, "aspect_ratio": "16:9"},
        {**SEEDED, "resolution": "720p", "camera_fixed": False, "enable_safety_checker": True},
        {**SEEDED, "unknown_field": "ignored"},
        {"seed": 42, "prompt": "a red fox"},
    ],
)
async def test_default_equivalent_requests_hit(gateway: Gateway, equivalent: dict[str, Any]) -> None:
    await _done(gateway, await _submit(gateway, SEEDED))
    assert (await _submit(gateway, equivalent)).headers["x-gateway-cache"] == "hit"
    assert _submits(gateway) == 1


async def test_a_tenants_entries_never_serve_another_tenant(gateway: Gateway) -> None:
    await _done(gateway, await _submit(gateway, SEEDED, tenant="acme"))
    other = await _submit(gateway, SEEDED, tenant="globex")
    assert other.headers["x-gateway-cache"] == "miss"
    assert other.headers["x-gateway-cache-key"] != (await _submit(gateway, SEEDED)).headers["x-gateway-cache-key"]
    assert _submits(gateway) == 2


async def test_tenants_in_one_namespace_share_results(gateway: Gateway) -> None:
    for tenant in ("acme", "globex"):
        await gateway.client.post(
            "/admin/tenants",
            json={"id": tenant, "name": tenant, "policy": {"cache_namespace": "studio"}},
            headers=gateway.admin,
        )
    await gateway.client.post("/admin/tenants", json={"id": "outsider", "name": "O"}, headers=gateway.admin)
    await _done(gateway, await _submit(gateway, SEEDED, tenant="acme"))
    assert (await _submit(gateway, SEEDED, tenant="globex")).headers["x-gateway-cache"] == "hit"
    assert (await _submit(gateway, SEEDED, tenant="outsider")).headers["x-gateway-cache"] == "miss"


@pytest.mark.parametrize("control", [{"x-gateway-cache": "bypass"}, {"Cache-Control": "no-cache"}])
async def test_bypass_skips_the_lookup_and_refreshes_the_entry(gateway: Gateway, control: dict[str, str]) -> None:
    first = await _done(gateway, await _submit(gateway, SEEDED))
    fresh = await _done(gateway, await _submit(gateway, SEEDED, headers=control))
    assert fresh["submit"].headers["x-gateway-cache"] == "bypass"
    assert _submits(gateway) == 2
    entry = await gateway.redis.get(f"gw:v1:cache:{{{first['submit'].headers['x-gateway-cache-key']}}}")
    assert entry is not None
    assert fresh["body"]["request_id"] in entry, "the fresh result replaced the entry"
    assert (await _submit(gateway, SEEDED)).headers["x-gateway-cache"] == "hit"


async def test_only_if_cached_answers_404_on_a_miss_without_submitting(gateway: Gateway) -> None:
    only = {"x-gateway-cache": "only-if-cached"}
    miss = await _submit(gateway, SEEDED, headers=only)
    assert miss.status_code == 404
    assert miss.json()["error_type"] == "cache_miss"
    seedless = await _submit(gateway, {"prompt": "x"}, headers=only)
    assert seedless.status_code == 404
    assert _submits(gateway) == 0
    await _done(gateway, await _submit(gateway, SEEDED))
    assert (await _submit(gateway, SEEDED, headers=only)).headers["x-gateway-cache"] == "hit"


async def test_purges(gateway: Gateway) -> None:
    first = await _done(gateway, await _submit(gateway, SEEDED))
    key = first["submit"].headers["x-gateway-cache-key"]
    one = await gateway.client.delete(f"/admin/cache/entries/{key}", headers=gateway.admin)
    assert one.json() == {"cache_key": key, "removed": 1}
    assert (await gateway.client.delete(f"/admin/cache/entries/{key}", headers=gateway.admin)).status_code == 404
    await _done(gateway, await _submit(gateway, SEEDED))
    await _done(gateway, await _submit(gateway, {**SEEDED, "seed": 1}))
    purged = await gateway.client.delete("/admin/tenants/acme/cache", headers=gateway.admin)
    assert purged.json()["removed"] == 2
    after = await _submit(gateway, SEEDED)
    assert after.headers["x-gateway-cache"] == "miss"
    assert after.headers["x-gateway-cache-key"] != key, "keys after a purge differ from every key before it"
    await _done(gateway, after)
    assert (await _submit(gateway, SEEDED)).headers["x-gateway-cache"] == "hit", "a purged scope caches again"
    audit = (await gateway.client.get("/admin/audit", headers=gateway.admin)).json()["entries"]
    assert {"cache.purge_entry", "cache.purge_tenant"} <= {e["action"] for e in audit}


async def test_entries_expire_after_their_ttl(gateway: Gateway) -> None:
    await gateway.client.post(
        "/admin/tenants", json={"id": "acme", "name": "A", "policy": {"cache_ttl_seconds": 60}}, headers=gateway.admin
    )
    first = await _done(gateway, await _submit(gateway, SEEDED))
    key = f"gw:v1:cache:{{{first['submit'].headers['x-gateway-cache-key']}}}"
    assert 0 < await gateway.redis.ttl(key) <= 60, "the tenant's TTL applies"


async def test_no_entry_outlives_the_global_ttl(gateway: Gateway, redis_client: Any) -> None:
    short = gateway.settings.model_copy(update={"cache_ttl_seconds": 1})
    app = create_app(short, redis=redis_client, upstream_transport=simulator_transport(gateway.sim))
    headers = await gateway.auth()
    async with serve_in_process(app) as client:
        first = (await client.post(f"/queue/{T2V}", json=SEEDED, headers=headers)).json()
        await gateway.wait_status(first["status_url"])

        async def expired() -> bool:
            again = await client.post(
                f"/queue/{T2V}", json=SEEDED, headers={**headers, "x-gateway-cache": "only-if-cached"}
            )
            return again.status_code == 404

        assert await eventually(expired, timeout=5)


async def test_failures_are_never_cached(gateway: Gateway) -> None:
    gateway.sim.add_fault(FaultRule(op="job", kind="fail", status=500))
    await _done(gateway, await _submit(gateway, SEEDED))
    assert (await _submit(gateway, SEEDED)).headers["x-gateway-cache"] == "miss"


async def test_seedless_caching_is_opt_in_per_tenant(gateway: Gateway) -> None:
    await gateway.client.post(
        "/admin/tenants", json={"id": "acme", "name": "A", "policy": {"cache_seedless": True}}, headers=gateway.admin
    )
    await _done(gateway, await _submit(gateway, {"prompt": "same prompt, same video"}))
    assert (await _submit(gateway, {"prompt": "same prompt, same video"})).headers["x-gateway-cache"] == "hit"


async def test_a_tenant_can_turn_caching_off(gateway: Gateway) -> None:
    await gateway.client.post(
        "/admin/tenants", json={"id": "acme", "name": "A", "policy": {"cache": False}}, headers=gateway.admin
    )
    for _ in range(2):
        await _done(gateway, await _submit(gateway, SEEDED))
    assert _submits(gateway) == 2


async def test_followers_share_the_leaders_job_and_its_failure_and_nothing_is_charged(gateway: Gateway) -> None:
    await gateway.client.post(
        "/admin/tenants", json={"id": "acme", "name": "A", "budget": {"limit_micros": 10**8}}, headers=gateway.admin
    )
    gateway.sim.add_fault(
        FaultRule(op="job", kind="fail", status=500, body={"detail": "boom", "error_type": "runner_server_error"})
    )
    gateway.sim.configure(processing_seconds=1)
    leader = await _submit(gateway, SEEDED)
    follower = await _submit(gateway, SEEDED)
    assert follower.headers["x-gateway-cache"] == "merged"
    assert follower.headers["x-gateway-cost-micros"] == "0"
    finals = [await gateway.wait_status(r.json()["status_url"]) for r in (leader, follower)]
    assert [f["error_type"] for f in finals] == ["runner_server_error", "runner_server_error"]
    result = await gateway.client.get(follower.json()["response_url"], headers=await gateway.auth())
    assert (result.status_code, result.json()) == (500, {"detail": "boom", "error_type": "runner_server_error"})
    usage = (await gateway.client.get("/v1/usage", headers=await gateway.auth())).json()
    assert (usage["spent_micros"], usage["reserved_micros"]) == (0, 0)
    assert _submits(gateway) == 1


async def test_cancelling_a_follower_or_the_leader_never_cancels_the_other(gateway: Gateway) -> None:
    gateway.sim.configure(processing_seconds=1)
    leader = (await _submit(gateway, SEEDED)).json()
    follower = (await _submit(gateway, SEEDED)).json()
    third = (await _submit(gateway, SEEDED)).json()
    headers = await gateway.auth()
    assert (await gateway.client.put(follower["cancel_url"], headers=headers)).status_code == 202
    assert (await gateway.client.put(leader["cancel_url"], headers=headers)).status_code == 202
    cancelled = [await gateway.wait_status(j["status_url"]) for j in (leader, follower)]
    assert [c["error_type"] for c in cancelled] == ["client_cancelled", "client_cancelled"]
    survivor = await gateway.wait_status(third["status_url"])
    assert "error" not in survivor, "the shared upstream job ran on for the request still waiting for it"
    assert gateway.sim.stats()["calls"]["cancel"] == 0


async def test_cache_metrics(gateway: Gateway) -> None:
    await _done(gateway, await _submit(gateway, SEEDED))
    await _submit(gateway, SEEDED)
    await _submit(gateway, SEEDED, headers={"x-gateway-cache": "bypass"})
    text = (await gateway.client.get("/metrics")).text
    assert 'gateway_cache_lookups_total{outcome="hit"} 1.0' in text
    assert 'gateway_cache_lookups_total{outcome="lead"} 1.0' in text
    assert "gateway_cache_bypasses_total 1.0" in text
    assert 'gateway_cache_saved_micros_total{how="hit",tenant="acme"} 261360.0' in text
