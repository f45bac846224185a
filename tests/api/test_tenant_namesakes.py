"""A tenant deleted and created again under the same id is another tenant (``Tenant.uid``): it never replays the
old one's idempotency keys, is never answered from its cache, never lists its webhook deliveries, and starts its
budget from zero (docs: README "Tenants")."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from service.config import Settings
from service.simulator.app import SimulatorState
from tests.support.admin import create_tenant, issue_key, key_auth
from tests.support.endpoints import T2V
from tests.support.gateway import Gateway, fast_settings, local, running_gateway
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

SECRET_PROMPT = "old tenant's confidential storyboard"


async def _recreate(gateway: Gateway, tenant_id: str = "acme") -> str:
    deleted = await gateway.client.delete(f"/admin/tenants/{tenant_id}", headers=gateway.admin)
    assert deleted.status_code == 200, deleted.text
    await create_tenant(gateway.client, tenant_id)
    return await issue_key(gateway.client, tenant_id)


async def test_idempotency_key_replay_hands_the_old_tenants_result_to_a_new_namesake(gateway: Gateway) -> None:
    old_key = await gateway.key_for("acme")
    body = {"prompt": SECRET_PROMPT}
    first = await gateway.client.post(
        f"/run/{T2V}", json=body, headers=key_auth(old_key) | {"Idempotency-Key": "order-1"}
    )
    assert first.status_code == 200, first.text

    new_key = await _recreate(gateway)
    # The new tenant's own GETs of the old request are refused (tenant uid check in JobQueries.get)...
    old_id = first.headers["x-fal-request-id"]
    own_read = await gateway.client.get(f"/queue/fal-ai/bytedance/requests/{old_id}", headers=key_auth(new_key))
    assert own_read.status_code == 404
    # ...but the same Idempotency-Key answers the new tenant with the old tenant's job and result.
    again = await gateway.client.post(
        f"/run/{T2V}", json=body, headers=key_auth(new_key) | {"Idempotency-Key": "order-1"}
    )
    assert again.status_code == 200, again.text
    assert again.headers["x-fal-request-id"] != old_id, "the new tenant was given the old tenant's request"
    assert gateway.sim.stats()["calls"]["submit"] == 2, "the new tenant's request was run for it"


async def test_queue_submit_with_replayed_idempotency_key_reveals_old_tenants_request(gateway: Gateway) -> None:
    old_key = await gateway.key_for("acme")
    body = {"prompt": SECRET_PROMPT}
    first = await gateway.client.post(f"/queue/{T2V}", json=body, headers=key_auth(old_key) | {"Idempotency-Key": "k"})
    assert first.status_code == 200
    await gateway.wait_status(local(first.json()["status_url"]))
    new_key = await _recreate(gateway)
    again = await gateway.client.post(f"/queue/{T2V}", json=body, headers=key_auth(new_key) | {"Idempotency-Key": "k"})
    assert again.status_code == 200
    assert again.json()["request_id"] != first.json()["request_id"]
    assert gateway.sim.stats()["calls"]["submit"] == 2, "the new tenant's request was never submitted"


async def test_result_cache_of_a_deleted_tenant_answers_its_new_namesake(gateway: Gateway) -> None:
    old_key = await gateway.key_for("acme")
    body = {"prompt": SECRET_PROMPT, "seed": 42}
    first = await gateway.client.post(f"/queue/{T2V}", json=body, headers=key_auth(old_key))
    await gateway.wait_status(local(first.json()["status_url"]))

    async def cached() -> bool:
        probe = await gateway.client.post(
            f"/queue/{T2V}", json=body, headers=key_auth(old_key) | {"x-gateway-cache": "only-if-cached"}
        )
        return probe.status_code == 200

    await eventually(cached)
    new_key = await _recreate(gateway)
    # Only a cache hit can answer only-if-cached: a new tenant has no cache of its own yet.
    probe = await gateway.client.post(
        f"/queue/{T2V}", json=body, headers=key_auth(new_key) | {"x-gateway-cache": "only-if-cached"}
    )
    assert probe.status_code == 404, f"the new tenant was answered from the old tenant's cache: {probe.text}"


HOSTS = {"receiver.test": ["127.0.0.1"]}


async def _resolve(host: str) -> Sequence[str]:
    return HOSTS.get(host, [])


@pytest.fixture
async def hook_gateway(redis_client: Redis, redis_url: str, sim: SimulatorState) -> AsyncIterator[Gateway]:
    settings: Settings = fast_settings(
        redis_url, webhook_allowed_networks="127.0.0.0/8", webhook_retry_schedule="0.05", webhook_timeout_seconds=2.0
    )
    async with running_gateway(redis_client, sim, settings, outbound_resolver=_resolve) as gateway:
        yield gateway


async def test_webhook_deliveries_of_a_deleted_tenant_are_listed_to_its_new_namesake(
    hook_gateway: Gateway, receiver: Receiver
) -> None:
    gateway = hook_gateway
    old_key = await gateway.key_for("acme")
    hook = receiver.url("/hook?token=old-tenants-receiver-token", host="receiver.test")
    submitted = await gateway.client.post(
        f"/queue/{T2V}", params={"fal_webhook": hook}, json={"prompt": SECRET_PROMPT}, headers=key_auth(old_key)
    )
    assert submitted.status_code == 200, submitted.text

    async def delivered() -> list[dict[str, Any]] | None:
        page = (await gateway.client.get("/v1/webhooks/deliveries", headers=key_auth(old_key))).json()
        return page["deliveries"] if page["deliveries"] and page["deliveries"][0]["state"] == "delivered" else None

    [old] = await eventually(delivered)
    new_key = await _recreate(gateway)
    listed = (await gateway.client.get("/v1/webhooks/deliveries", headers=key_auth(new_key))).json()["deliveries"]
    detail = await gateway.client.get(f"/v1/webhooks/deliveries/{old['id']}", headers=key_auth(new_key))
    assert listed == [], f"the new tenant is listed the old tenant's deliveries: {listed}"
    assert detail.status_code == 404, f"the new tenant reads the old tenant's delivery: {detail.text[:300]}"


async def test_spend_of_a_deleted_tenant_is_shown_to_and_charged_against_its_new_namesake(gateway: Gateway) -> None:
    old_key = await gateway.key_for("acme")
    first = await gateway.client.post(f"/queue/{T2V}", json={"prompt": SECRET_PROMPT}, headers=key_auth(old_key))
    assert first.status_code == 200, first.text
    await gateway.wait_status(local(first.json()["status_url"]))

    async def settled() -> bool:
        usage = (await gateway.client.get("/v1/usage", headers=key_auth(old_key))).json()
        return bool(usage["spent_micros"])

    await eventually(settled)
    new_key = await _recreate(gateway)
    usage = (await gateway.client.get("/v1/usage", headers=key_auth(new_key))).json()
    assert usage["spent_micros"] == 0, f"the new tenant is shown the old tenant's spend: {usage}"
