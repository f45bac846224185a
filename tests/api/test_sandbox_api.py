"""Sandbox tenants: served by the gateway's embedded sandbox simulator while the real upstream (here a recording
transport in front of the test simulator) receives nothing, never charged, still limited and policed, and marked
``x-gateway-sandbox: true`` on every response once authenticated and on every webhook delivery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from service.app import create_app
from service.metrics import Metrics
from service.simulator.app import SimulatorState
from tests.support.admin import ADMIN, create_tenant, issue_key, key_auth
from tests.support.clocks import ShiftableClock
from tests.support.endpoints import I2V, T2V, T2V_INPUT
from tests.support.gateway import Gateway, fast_settings, local, serve_in_process, simulator_transport
from tests.support.receiver import Receiver
from tests.support.waiting import eventually

SANDBOX = "x-gateway-sandbox"
SANDBOX_MEDIA = "http://127.0.0.1:8080/_sandbox/media/"


class Recording(httpx.AsyncBaseTransport):
    """The real upstream: the test simulator behind a log of every request the gateway sends it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.requests: list[str] = []
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url}")
        return await self._inner.handle_async_request(request)


@pytest.fixture
def real_upstream(sim: SimulatorState) -> Recording:
    return Recording(simulator_transport(sim))


async def _resolve(host: str) -> Sequence[str]:
    return ["127.0.0.1"] if host == "receiver.test" else []


@pytest.fixture
async def gateway(
    redis_client: Redis, redis_url: str, sim: SimulatorState, real_upstream: Recording
) -> AsyncIterator[Gateway]:
    settings = fast_settings(
        redis_url,
        sandbox_queue_seconds=0.05,
        sandbox_processing_seconds=0.3,
        webhook_allowed_networks="127.0.0.0/8",
        webhook_retry_schedule="0.05,0.05",
        cache_content_hashing=True,
    )
    metrics, clock = Metrics(), ShiftableClock()
    app = create_app(
        settings,
        redis=redis_client,
        upstream_transport=real_upstream,
        metrics=metrics,
        clock=clock,
        outbound_resolver=_resolve,
    )
    async with serve_in_process(app) as client:
        yield Gateway(client=client, sim=sim, settings=settings, metrics=metrics, redis=redis_client, clock=clock)


async def _sandbox(gateway: Gateway, tenant_id: str = "sb", **fields: Any) -> dict[str, str]:
    await create_tenant(gateway.client, tenant_id, sandbox=True, **fields)
    return key_auth(await issue_key(gateway.client, tenant_id))


def _marked(response: httpx.Response) -> httpx.Response:
    assert response.headers.get(SANDBOX) == "true", (response.status_code, dict(response.headers))
    return response


async def _usage(gateway: Gateway, tenant_id: str) -> dict[str, Any]:
    usage: dict[str, Any] = (await gateway.client.get(f"/admin/tenants/{tenant_id}/usage", headers=ADMIN)).json()
    return usage


async def test_a_queue_job_completes_from_the_sandbox_and_fal_receives_nothing(
    gateway: Gateway, real_upstream: Recording
) -> None:
    headers = await _sandbox(gateway, budget={"limit_micros": 1, "period": "month"})
    submitted = _marked(await gateway.client.post(f"/queue/{T2V}", json=T2V_INPUT, headers=headers))
    assert submitted.status_code == 200, "a budget far below the estimate does not apply: nothing is charged"
    assert submitted.headers["x-gateway-cost-micros"] == "0", "nothing is reserved"
    status_url, response_url = local(submitted.json()["status_url"]), local(submitted.json()["response_url"])

    async def completed() -> bool:
        status = _marked(await gateway.client.get(status_url, headers=headers))
        return bool(status.json()["status"] == "COMPLETED")

    await eventually(completed)
    stream = _marked(await gateway.client.get(status_url + "/stream", headers=headers))
    assert '"COMPLETED"' in stream.text
    result = _marked(await gateway.client.get(response_url, headers=headers))
    assert result.status_code == 200
    video_url = result.json()["video"]["url"]
    assert video_url.startswith(SANDBOX_MEDIA), video_url
    served = await gateway.client.get(video_url.removeprefix("http://127.0.0.1:8080"))
    assert served.status_code == 200
    assert served.content[4:8] == b"ftyp"
    _marked(await gateway.client.put(response_url + "/cancel", headers=headers))  # already done: still marked

    assert real_upstream.requests == []
    usage = await _usage(gateway, "sb")
    assert (usage["spent_micros"], usage["reserved_micros"]) == (0, 0)
    own = _marked(await gateway.client.get("/v1/usage", headers=headers)).json()
    assert own["spent_micros"] == 0
    assert (await gateway.client.get("/admin/tenants/sb/charges", headers=ADMIN)).json()["charges"] == []
    me = _marked(await gateway.client.get("/v1/me", headers=headers)).json()
    assert me["sandbox"] is True
    submits = gateway.metrics.registry.get_sample_value(
        "gateway_sandbox_jobs_submitted_total", {"endpoint": T2V, "mode": "queue"}
    )
    assert submits == 1
    assert gateway.metrics.registry.get_sample_value(
        "gateway_jobs_submitted_total", {"endpoint": T2V, "mode": "queue"}
    ) in (None, 0)


async def test_run_and_estimate_are_served_from_the_sandbox_and_marked(
    gateway: Gateway, real_upstream: Recording
) -> None:
    headers = await _sandbox(gateway)
    estimate = _marked(await gateway.client.post(f"/v1/estimate/{T2V}", json=T2V_INPUT, headers=headers))
    assert estimate.status_code == 200
    assert estimate.json()["cost_micros"] > 0, "the estimate is the price a real tenant would pay"
    run = _marked(await gateway.client.post(f"/run/{T2V}", json=T2V_INPUT, headers=headers))
    assert run.status_code == 200, run.text
    assert run.headers["x-gateway-cost-micros"] == "0"
    assert run.json()["video"]["url"].startswith(SANDBOX_MEDIA)
    assert real_upstream.requests == []
    assert (await _usage(gateway, "sb"))["spent_micros"] == 0


async def test_a_cancel_goes_to_the_sandbox(gateway: Gateway, real_upstream: Recording) -> None:
    headers = await _sandbox(gateway)
    submitted = _marked(await gateway.client.post(f"/queue/{T2V}", json=T2V_INPUT, headers=headers))
    cancel_url = local(submitted.json()["cancel_url"])
    cancelled = _marked(await gateway.client.put(cancel_url, headers=headers))
    assert cancelled.status_code == 202, cancelled.text
    status_url = local(submitted.json()["status_url"])

    async def final() -> dict[str, Any] | None:
        body: dict[str, Any] = _marked(await gateway.client.get(status_url, headers=headers)).json()
        return body if body["status"] == "COMPLETED" else None

    assert (await eventually(final))["error_type"] == "client_cancelled"
    assert real_upstream.requests == []


async def test_limits_and_policy_still_apply_and_errors_are_marked(gateway: Gateway, real_upstream: Recording) -> None:
    headers = await _sandbox(gateway, policy={"max_concurrent": 1, "max_resolution": "480p"})
    small = {**T2V_INPUT, "resolution": "480p"}
    first = _marked(await gateway.client.post(f"/queue/{T2V}", json=small, headers=headers))
    assert first.status_code == 200
    refused = _marked(await gateway.client.post(f"/queue/{T2V}", json=small, headers=headers))
    assert refused.status_code == 429
    assert refused.json()["rule"] == "max_concurrent"
    denied = _marked(await gateway.client.post(f"/queue/{T2V}", json=T2V_INPUT, headers=headers))
    assert denied.status_code == 403
    assert denied.json()["error_type"] == "policy_violation"
    missing = _marked(await gateway.client.get(f"/queue/{T2V.rsplit('/', 1)[0]}/requests/nope/status", headers=headers))
    assert missing.status_code == 404
    unauthenticated = await gateway.client.get("/v1/me", headers={"Authorization": "Key nope:nope"})
    assert unauthenticated.status_code == 401
    assert SANDBOX not in unauthenticated.headers, "nothing is known of the caller before it authenticates"
    assert real_upstream.requests == []


async def test_the_cache_never_crosses_between_sandbox_and_real_tenants(
    gateway: Gateway, real_upstream: Recording
) -> None:
    shared = {"cache_namespace": "shared"}
    sandbox = await _sandbox(gateway, policy=shared)
    await create_tenant(gateway.client, "real", policy=shared)
    real = key_auth(await issue_key(gateway.client, "real"))
    seeded = {**T2V_INPUT, "seed": 7}

    # Both at once: an identical request in flight must not merge them either.
    sandbox_run, real_run = await asyncio.gather(
        gateway.client.post(f"/run/{T2V}", json=seeded, headers=sandbox),
        gateway.client.post(f"/run/{T2V}", json=seeded, headers=real),
    )
    assert sandbox_run.status_code == real_run.status_code == 200
    assert sandbox_run.json()["video"]["url"].startswith(SANDBOX_MEDIA)
    assert not real_run.json()["video"]["url"].startswith(SANDBOX_MEDIA)
    assert sandbox_run.headers["x-gateway-cache"] != "hit"
    assert real_run.headers["x-gateway-cache"] != "hit"
    assert SANDBOX not in real_run.headers
    assert sum(line.startswith("POST ") for line in real_upstream.requests) == 1, "only the real tenant's submit"

    again_sandbox = _marked(await gateway.client.post(f"/run/{T2V}", json=seeded, headers=sandbox))
    again_real = await gateway.client.post(f"/run/{T2V}", json=seeded, headers=real)
    assert again_sandbox.headers["x-gateway-cache"] == again_real.headers["x-gateway-cache"] == "hit"
    assert again_sandbox.json()["video"]["url"].startswith(SANDBOX_MEDIA)
    assert not again_real.json()["video"]["url"].startswith(SANDBOX_MEDIA)
    assert again_sandbox.headers["x-gateway-cache-key"] != again_real.headers["x-gateway-cache-key"]


async def test_the_flag_round_trips_through_the_admin_api(gateway: Gateway) -> None:
    created = await create_tenant(gateway.client, "flagged", sandbox=True)
    assert created["sandbox"] is True
    assert (await gateway.client.get("/admin/tenants/flagged", headers=ADMIN)).json()["sandbox"] is True
    patched = await gateway.client.patch("/admin/tenants/flagged", json={"sandbox": False}, headers=ADMIN)
    assert patched.status_code == 200, patched.text
    assert patched.json()["sandbox"] is False
    listed = (await gateway.client.get("/admin/tenants", headers=ADMIN)).json()["tenants"]
    assert [t["sandbox"] for t in listed if t["id"] == "flagged"] == [False]
    assert (await create_tenant(gateway.client, "plain"))["sandbox"] is False


async def test_a_sandbox_tenants_webhook_is_marked(
    gateway: Gateway, real_upstream: Recording, receiver: Receiver
) -> None:
    headers = await _sandbox(gateway)
    hook = receiver.url("/hook", host="receiver.test")
    submitted = await gateway.client.post(
        f"/queue/{T2V}", params={"fal_webhook": hook}, json=T2V_INPUT, headers=headers
    )
    assert _marked(submitted).status_code == 200

    async def delivered() -> bool:
        return bool(receiver.at("/hook"))

    await eventually(delivered)
    [received] = receiver.at("/hook")
    assert received.headers[SANDBOX] == "true"
    assert json.loads(received.body)["status"] == "OK"
    assert real_upstream.requests == []


async def test_input_images_are_read_through_the_sandbox(gateway: Gateway, real_upstream: Recording) -> None:
    headers = await _sandbox(gateway)
    image = SANDBOX_MEDIA + "720p-1280x720.mp4"  # any bytes hash; these are served by the sandbox in-process
    body = {"prompt": "a cat waves", "image_url": image, "aspect_ratio": "auto", "seed": 3}
    run = _marked(await gateway.client.post(f"/run/{I2V}", json=body, headers=headers))
    assert run.status_code == 200, run.text
    # The same bytes under another URL: a hit only if the gateway read them (through the sandbox) to hash them.
    renamed = {**body, "image_url": image + "?copy=1"}
    again = _marked(await gateway.client.post(f"/run/{I2V}", json=renamed, headers=headers))
    assert again.headers["x-gateway-cache"] == "hit"
    assert real_upstream.requests == []
