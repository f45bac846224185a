"""Webhook callbacks through the app, delivered over real loopback connections to a real receiver: fal's payload,
both signatures, retries and dead letters, the delivery log and replays, and the outbound guard at delivery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

import pytest
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook

from service.simulator.app import SimulatorState
from service.simulator.faults import FaultRule
from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.gateway import Gateway, fast_settings, local, running_gateway
from tests.support.receiver import Receiver, fal_signature_valid, served_jwks
from tests.support.redis_cluster import MODES
from tests.support.waiting import eventually

REDIS_MODES = MODES  # deliveries, their due schedule (8 shards on the cluster) and the events, on both

HOSTS = {
    "nowhere.test": [],
    "receiver.test": ["127.0.0.1"],
    "rebound.test": ["127.0.0.1"],
    "mixed.test": ["93.184.215.14", "10.0.0.7"],
}

MakeGateway = Callable[..., AbstractAsyncContextManager[Gateway]]


async def _resolve(host: str) -> Sequence[str]:
    return HOSTS.get(host, [])


@pytest.fixture
def make_gateway(redis_client: Redis, redis_url: str, sim: SimulatorState) -> MakeGateway:
    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Gateway]:
        values = {
            "webhook_allowed_networks": "127.0.0.0/8",
            "webhook_retry_schedule": "0.05,0.05,0.05",
            "webhook_timeout_seconds": 2.0,
            **overrides,
        }
        settings = fast_settings(redis_url, **values)
        async with running_gateway(redis_client, sim, settings, outbound_resolver=_resolve) as gateway:
            yield gateway

    return make


@pytest.fixture
async def gateway(make_gateway: MakeGateway) -> AsyncIterator[Gateway]:
    async with make_gateway() as gateway:
        yield gateway


async def _submit(gateway: Gateway, hook: str, body: dict[str, Any] | None = None, tenant: str = "acme") -> str:
    response = await gateway.client.post(
        f"/queue/{T2V}", params={"fal_webhook": hook}, json=body or T2V_INPUT, headers=await gateway.auth(tenant)
    )
    assert response.status_code == 200, response.text
    request_id: str = response.json()["request_id"]
    return request_id


async def _delivery(gateway: Gateway, request_id: str, state: str) -> dict[str, Any]:
    async def settled() -> dict[str, Any] | None:
        page = await gateway.client.get(
            "/admin/webhooks/deliveries", params={"request_id": request_id}, headers=gateway.admin
        )
        found = page.json()["deliveries"]
        if not found or found[0]["state"] != state:
            return None
        detail = await gateway.client.get(f"/admin/webhooks/deliveries/{found[0]['id']}", headers=gateway.admin)
        body: dict[str, Any] = detail.json()
        return body

    found: dict[str, Any] = await eventually(settled)
    return found


async def test_a_success_is_delivered_in_fals_shape_signed_both_ways(gateway: Gateway, receiver: Receiver) -> None:
    secret = (await gateway.client.post("/v1/webhook-secret", headers=await gateway.auth())).json()["secret"]
    request_id = await _submit(gateway, receiver.url("/hook"))
    delivery = await _delivery(gateway, request_id, "delivered")
    [received] = receiver.at("/hook")
    payload = json.loads(received.body)
    assert set(payload) == {"request_id", "gateway_request_id", "status", "payload"}
    assert payload["request_id"] == payload["gateway_request_id"] == request_id
    assert payload["status"] == "OK"
    assert payload["payload"]["video"]["url"].endswith(".mp4")
    assert received.headers["x-fal-webhook-request-id"] == request_id
    assert received.headers["x-fal-webhook-user-id"] == "acme"
    assert fal_signature_valid(await served_jwks(gateway.client), received)
    assert Webhook(secret).verify(received.body, received.headers) == payload
    assert received.headers["webhook-id"] == delivery["id"]
    assert delivery["attempts"] == 1
    assert [a["status_code"] for a in delivery["history"]] == [200]


async def test_a_failure_carries_fals_error_and_the_error_body(gateway: Gateway, receiver: Receiver) -> None:
    gateway.sim.add_fault(FaultRule(op="job", kind="fail", status=500))
    request_id = await _submit(gateway, receiver.url("/hook"))
    await _delivery(gateway, request_id, "delivered")
    payload = json.loads(receiver.at("/hook")[0].body)
    assert payload["status"] == "ERROR"
    assert payload["request_id"] == request_id
    assert isinstance(payload["error"], str)
    assert payload["error"]
    assert payload["payload"]["error_type"] == "runner_server_error"


async def test_cache_hits_and_merged_requests_get_callbacks_of_their_own(gateway: Gateway, receiver: Receiver) -> None:
    seeded = {**T2V_INPUT, "seed": 42}
    await gateway.auth()
    leader, follower = await asyncio.gather(
        _submit(gateway, receiver.url("/a"), seeded), _submit(gateway, receiver.url("/b"), seeded)
    )
    await _delivery(gateway, leader, "delivered")
    await _delivery(gateway, follower, "delivered")
    hit = await _submit(gateway, receiver.url("/c"), seeded)
    await _delivery(gateway, hit, "delivered")
    ids = {path: json.loads(receiver.at(path)[0].body)["request_id"] for path in ("/a", "/b", "/c")}
    assert ids == {"/a": leader, "/b": follower, "/c": hit}
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 3
    assert gateway.sim.stats()["calls"]["submit"] == 1


async def test_503_twice_then_200_is_three_attempts_with_one_webhook_id(gateway: Gateway, receiver: Receiver) -> None:
    receiver.script["/flaky"] = [503, 503]
    request_id = await _submit(gateway, receiver.url("/flaky"))
    delivery = await _delivery(gateway, request_id, "delivered")
    attempts = receiver.at("/flaky")
    assert len(attempts) == 3
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    assert len({a.headers["x-fal-webhook-request-id"] for a in attempts}) == 1
    assert [a["status_code"] for a in delivery["history"]] == [503, 503, 200]
    assert [a["result"] for a in delivery["history"]] == ["retry", "retry", "delivered"]


async def test_a_final_refusal_is_dead_lettered_and_replayed_with_the_same_id(
    gateway: Gateway, receiver: Receiver
) -> None:
    receiver.script["/gone"] = [404]
    request_id = await _submit(gateway, receiver.url("/gone"))
    failed = await _delivery(gateway, request_id, "failed")
    assert failed["attempts"] == 1, "a 404 is final: no retry"
    assert gateway.metrics.registry.get_sample_value("gateway_webhook_dead_letters_total") == 1
    replay = await gateway.client.post(f"/admin/webhooks/deliveries/{failed['id']}/redeliver", headers=gateway.admin)
    assert replay.status_code == 202
    delivered = await _delivery(gateway, request_id, "delivered")
    assert delivered["replays"] == 1
    assert [a.headers["webhook-id"] for a in receiver.at("/gone")] == [failed["id"], failed["id"]]


async def test_every_attempt_used_dead_letters_and_the_tenant_replay_takes_every_failure(
    gateway: Gateway, receiver: Receiver
) -> None:
    receiver.script["/down"] = [500] * 8
    request_id = await _submit(gateway, receiver.url("/down"))
    failed = await _delivery(gateway, request_id, "failed")
    assert failed["attempts"] == 4, "one attempt plus one per entry of the schedule"
    replayed = await gateway.client.post(
        "/admin/tenants/acme/webhooks/redeliver", json={"since": "2000-01-01T00:00:00Z"}, headers=gateway.admin
    )
    assert replayed.json() == {"redelivered": [failed["id"]]}
    receiver.script["/down"] = []
    await _delivery(gateway, request_id, "delivered")


async def test_retry_after_is_honoured(gateway: Gateway, receiver: Receiver) -> None:
    receiver.script["/busy"] = [429]
    receiver.retry_after["/busy"] = "30"
    request_id = await _submit(gateway, receiver.url("/busy"))

    async def waiting() -> dict[str, Any] | None:
        page = await gateway.client.get(
            "/v1/webhooks/deliveries", params={"request_id": request_id}, headers=await gateway.auth()
        )
        found = page.json()["deliveries"]
        return found[0] if found and found[0]["attempts"] == 1 else None

    delivery = await eventually(waiting)
    assert delivery["state"] == "pending"
    assert delivery["last_status"] == 429
    detail = (
        await gateway.client.get(f"/v1/webhooks/deliveries/{delivery['id']}", headers=await gateway.auth())
    ).json()
    waited = datetime.fromisoformat(detail["next_attempt_at"]) - datetime.fromisoformat(detail["history"][0]["at"])
    assert 29 <= waited.total_seconds() <= 31, "the receiver asked for 30 s, more than the schedule's 0.05 s"


async def test_the_tenants_default_webhook_is_used_when_a_submit_names_none(
    gateway: Gateway, receiver: Receiver
) -> None:
    created = await gateway.client.post(
        "/admin/tenants",
        json={"id": "acme", "name": "Acme", "policy": {"default_webhook_url": receiver.url("/default")}},
        headers=gateway.admin,
    )
    assert created.status_code == 201, created.text
    submitted = await gateway.client.post(f"/queue/{T2V}", json=T2V_INPUT, headers=await gateway.auth())
    await _delivery(gateway, submitted.json()["request_id"], "delivered")
    assert len(receiver.at("/default")) == 1


async def test_tenants_see_only_their_own_deliveries(gateway: Gateway, receiver: Receiver) -> None:
    request_id = await _submit(gateway, receiver.url("/mine"))
    delivery = await _delivery(gateway, request_id, "delivered")
    own = await gateway.client.get("/v1/webhooks/deliveries", headers=await gateway.auth())
    assert [d["id"] for d in own.json()["deliveries"]] == [delivery["id"]]
    other = await gateway.auth("globex")
    assert (await gateway.client.get("/v1/webhooks/deliveries", headers=other)).json()["deliveries"] == []
    assert (await gateway.client.get(f"/v1/webhooks/deliveries/{delivery['id']}", headers=other)).status_code == 404


async def test_the_jwks_is_public(gateway: Gateway) -> None:
    jwks = await served_jwks(gateway.client)
    [key] = jwks["keys"]
    assert (key["kty"], key["crv"]) == ("OKP", "Ed25519")


async def test_a_name_is_delivered_over_the_checked_address_with_its_own_host(
    gateway: Gateway, receiver: Receiver
) -> None:
    request_id = await _submit(gateway, receiver.url("/named", host="receiver.test"))
    await _delivery(gateway, request_id, "delivered")
    assert receiver.at("/named")[0].headers["host"] == f"receiver.test:{receiver.port}"


async def test_a_name_resolving_to_a_refused_address_is_never_connected_to(
    make_gateway: MakeGateway, receiver: Receiver
) -> None:
    async with make_gateway(webhook_allowed_networks="127.0.0.2/32") as gateway:
        for host in ("rebound.test", "mixed.test"):
            request_id = await _submit(gateway, receiver.url("/evil", host=host))
            failed = await _delivery(gateway, request_id, "failed")
            assert failed["history"][0]["error"].startswith("destination refused")
        assert receiver.connections == 0


async def test_a_host_that_does_not_resolve_is_tried_again_later(gateway: Gateway, receiver: Receiver) -> None:
    request_id = await _submit(gateway, receiver.url("/x", host="nowhere.test"))

    async def tried() -> dict[str, Any] | None:
        page = await gateway.client.get(
            "/admin/webhooks/deliveries", params={"request_id": request_id}, headers=gateway.admin
        )
        found = page.json()["deliveries"]
        return found[0] if found and found[0]["attempts"] >= 1 else None

    delivery = await eventually(tried)
    detail = (await gateway.client.get(f"/admin/webhooks/deliveries/{delivery['id']}", headers=gateway.admin)).json()
    assert detail["history"][0]["error"] == "host does not resolve"
    assert detail["history"][0]["result"] == "retry", "DNS may be back in a minute: not a final refusal"


HOSTILE = [
    "http://127.0.0.1/x",
    "http://2130706433/x",
    "http://0x7f000001/x",
    "http://127.1/x",
    "http://0177.0.0.1/x",
    "http://[::ffff:127.0.0.1]/x",
    "http://[::1]/x",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/x",
    "http://100.100.100.200/x",
    "http://10.0.0.1/x",
    "http://192.168.1.1/x",
    "http://0.0.0.0/x",
    "http://localhost/x",
    "http://user:pw@example.com/x",
    "http://example.com/x\r\nX-Injected: 1",
    "http://example.com/\x00",
    "ftp://example.com/x",
    "file:///etc/passwd",
    "gopher://example.com/x",
    "http://example.com/" + "a" * 2048,
]


@pytest.mark.parametrize("hook", HOSTILE)
async def test_hostile_webhooks_are_refused_at_submit_and_reserve_nothing(make_gateway: MakeGateway, hook: str) -> None:
    async with make_gateway(webhook_allowed_networks="") as gateway:
        response = await gateway.client.post(
            f"/queue/{T2V}", params={"fal_webhook": hook}, json=T2V_INPUT, headers=await gateway.auth()
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["query", "fal_webhook"]
        usage = (await gateway.client.get("/admin/tenants/acme/usage", headers=gateway.admin)).json()
        assert usage["reserved_micros"] == 0
        assert gateway.sim.stats()["calls"]["submit"] == 0


async def test_a_job_without_a_webhook_queues_no_delivery(gateway: Gateway) -> None:
    submitted = await gateway.client.post(f"/queue/{T2V}", json=T2V_INPUT, headers=await gateway.auth())
    await gateway.wait_status(local(submitted.json()["status_url"]))
    log = await gateway.client.get("/admin/webhooks/deliveries", headers=gateway.admin)
    assert log.json()["deliveries"] == []
