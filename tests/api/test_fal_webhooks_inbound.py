"""fal's own webhooks, inbound: the simulator signs and sends them as fal does, and a verified one completes the job at
once; a bad, stale or replayed one is refused and changes nothing. Polling is only the fallback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis

from service.http import in_process_transport
from service.simulator.app import SimulatorState
from service.simulator.faults import FaultRule
from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.gateway import BASE_URL, Gateway, fast_settings, local, running_gateway
from tests.support.waiting import eventually

MakeGateway = Callable[..., AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def make_gateway(redis_client: Redis, redis_url: str, sim: SimulatorState) -> MakeGateway:
    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Gateway]:
        values: dict[str, Any] = {
            "fal_webhooks": True,
            "public_url": BASE_URL,
            "fal_jwks_url": "http://sim/.well-known/jwks.json",
            "fal_webhook_poll_seconds": 60,
        }
        settings = fast_settings(redis_url, **(values | overrides))
        async with running_gateway(redis_client, sim, settings) as gateway:
            assert gateway.app is not None
            sim.webhook_transport = in_process_transport(gateway.app)  # fal calls the gateway back
            yield gateway

    return make


@pytest.fixture
async def gateway(make_gateway: MakeGateway) -> AsyncIterator[Gateway]:
    async with make_gateway() as gateway:
        yield gateway


async def _submitted(gateway: Gateway) -> dict[str, Any]:
    response = await gateway.client.post(f"/queue/{T2V}", json=T2V_INPUT, headers=await gateway.auth())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _webhooks_sent(gateway: Gateway, count: int) -> list[dict[str, Any]]:
    """Let the simulator send what is due until ``count`` webhook requests went out; the gateway's answers."""

    async def sent() -> list[dict[str, Any]] | None:
        await gateway.sim.deliver_due_webhooks()
        webhooks: list[dict[str, Any]] = gateway.sim.stats()["webhooks"]
        return webhooks if len(webhooks) >= count else None

    found: list[dict[str, Any]] = await eventually(sent)
    return found


async def _status(gateway: Gateway, submitted: dict[str, Any]) -> dict[str, Any]:
    response = await gateway.client.get(local(submitted["status_url"]), headers=await gateway.auth())
    body: dict[str, Any] = response.json()
    return body


def _counted(gateway: Gateway, result: str) -> float | None:
    return gateway.metrics.registry.get_sample_value("gateway_fal_webhooks_total", {"result": result})


async def test_a_verified_webhook_completes_the_job_at_once(gateway: Gateway) -> None:
    submitted = await _submitted(gateway)
    [answer] = await _webhooks_sent(gateway, 1)
    assert answer["status_code"] == 200
    final = await _status(gateway, submitted)
    assert final["status"] == "COMPLETED", "no poll was due for a minute: the webhook completed it"
    assert "error" not in final
    assert _counted(gateway, "accepted") == 1
    assert gateway.sim.stats()["calls"]["status"] == 1, "one status call, made because the webhook arrived"


async def test_the_submit_asks_fal_to_call_the_gateway_back(gateway: Gateway) -> None:
    submitted = await _submitted(gateway)
    [answer] = await _webhooks_sent(gateway, 1)
    assert answer["url"] == f"{BASE_URL}/fal-webhooks/{submitted['request_id']}"


@pytest.mark.parametrize(("kind", "reason"), [("bad_signature", "bad_signature"), ("stale", "stale")])
async def test_a_bad_or_stale_webhook_is_refused_and_changes_nothing(gateway: Gateway, kind: str, reason: str) -> None:
    gateway.sim.add_fault(FaultRule(op="webhook", kind=kind, times=0))
    submitted = await _submitted(gateway)
    answers = await _webhooks_sent(gateway, 1)
    assert {a["status_code"] for a in answers} == {401}
    assert (await _status(gateway, submitted))["status"] != "COMPLETED"
    assert _counted(gateway, reason) == len(answers)
    assert _counted(gateway, "accepted") is None


async def test_a_replayed_webhook_is_refused_and_the_job_completes_once(gateway: Gateway) -> None:
    gateway.sim.add_fault(FaultRule(op="webhook", kind="duplicate"))
    submitted = await _submitted(gateway)
    first, second = (await _webhooks_sent(gateway, 2))[:2]
    assert (first["status_code"], second["status_code"]) == (200, 403)
    assert (await _status(gateway, submitted))["status"] == "COMPLETED"
    assert _counted(gateway, "replay") == 1
    completed = gateway.metrics.registry.get_sample_value(
        "gateway_jobs_completed_total", {"endpoint": T2V, "outcome": "ok"}
    )
    assert completed == 1


async def test_a_webhook_for_another_request_is_refused(gateway: Gateway) -> None:
    first, second = await _submitted(gateway), await _submitted(gateway)
    # Point fal's callbacks for the first job at the second job's receiver URL.
    response = await gateway.client.post(
        f"/fal-webhooks/{second['request_id']}",
        content=b"{}",
        headers={
            "x-fal-webhook-request-id": "not-the-upstream-id",
            "x-fal-webhook-user-id": "u",
            "x-fal-webhook-timestamp": "1",
            "x-fal-webhook-signature": "00",
        },
    )
    assert response.status_code == 401, "the signature is checked before anything else"
    assert (await _status(gateway, first))["status"] != "COMPLETED"


async def test_a_lost_webhook_only_delays_completion(make_gateway: MakeGateway) -> None:
    async with make_gateway(fal_webhook_poll_seconds=0.3) as gateway:
        gateway.sim.add_fault(FaultRule(op="webhook", kind="drop", times=0))
        submitted = await _submitted(gateway)
        final = await gateway.wait_status(local(submitted["status_url"]))
        assert "error" not in final
        assert _counted(gateway, "accepted") is None
