"""Webhooks end to end: the gateway and the simulator as real processes, a real receiver on loopback, fal's webhooks
inbound from the simulator process, and a gateway killed with SIGKILL while deliveries wait for their retries."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.e2e import Processes
from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.loopback import free_port
from tests.support.receiver import Receiver, fal_signature_valid
from tests.support.redis import flush

pytestmark = pytest.mark.e2e
RETRIES = ",".join(["0.5"] * 20)


class WebhookProcesses(Processes):
    """The rig over plain HTTP, with fal's webhooks on (polling only every 30 s) and loopback receivers allowed."""

    @property
    def gw_url(self) -> str:
        return f"http://127.0.0.1:{self.gw_port}"

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context()  # nothing here speaks TLS

    def gateway_env(self) -> dict[str, str]:
        env = {k: v for k, v in super().gateway_env().items() if not k.startswith("GATEWAY_TLS_")}
        return env | {
            "GATEWAY_PUBLIC_URL": self.gw_url,
            "GATEWAY_FAL_WEBHOOKS": "true",
            "GATEWAY_FAL_JWKS_URL": f"{self.sim_url}/.well-known/jwks.json",
            "GATEWAY_FAL_WEBHOOK_POLL_SECONDS": "30",
            "GATEWAY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "GATEWAY_WEBHOOK_RETRY_SCHEDULE": RETRIES,
            "GATEWAY_WEBHOOK_LEASE_SECONDS": "2",
            "GATEWAY_WEBHOOK_TIMEOUT_SECONDS": "1.5",
        }


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[WebhookProcesses]:
    tmp = tmp_path_factory.mktemp("e2e-webhooks")
    flush(redis_url)
    procs = WebhookProcesses(tmp=tmp, ca=tmp / "none", redis_url=redis_url, sim_port=free_port(), gw_port=free_port())
    try:
        procs.start_simulator()
        procs.start_gateway()
        yield procs
    finally:
        procs.stop()
        flush(redis_url)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def _call(rig: WebhookProcesses, method: str, path: str, key: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{rig.gw_url}{path}", headers={"Authorization": f"Key {key}"}, timeout=10, **kwargs)


def _submit(rig: WebhookProcesses, key: str, hook: str, body: dict[str, Any] | None = None) -> str:
    response = _call(rig, "POST", f"/queue/{T2V}", key, params={"fal_webhook": hook}, json=body or T2V_INPUT)
    assert response.status_code == 200, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def _until(probe: Callable[[], Any], *, timeout: float = 20.0) -> Any:
    """Re-run ``probe`` (a cheap HTTP read) until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"condition not met within {timeout}s")


def _delivery(rig: WebhookProcesses, request_id: str, state: str) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        found = rig.admin("GET", "/admin/webhooks/deliveries", params={"request_id": request_id}).json()["deliveries"]
        if not found or found[0]["state"] != state:
            return None
        detail: dict[str, Any] = rig.admin("GET", f"/admin/webhooks/deliveries/{found[0]['id']}").json()
        return detail

    found: dict[str, Any] = _until(settled)
    return found


def test_a_job_is_completed_by_fals_webhook_and_delivered_signed_both_ways(
    rig: WebhookProcesses, receiver: Receiver
) -> None:
    key = rig.new_key("hooks")
    secret = _call(rig, "POST", "/v1/webhook-secret", key).json()["secret"]
    started = time.monotonic()
    request_id = _submit(rig, key, receiver.url("/ok"))
    _delivery(rig, request_id, "delivered")
    assert time.monotonic() - started < 25, "completed by fal's webhook, long before the 30 s fallback poll"
    [received] = receiver.at("/ok")
    payload = json.loads(received.body)
    assert payload["request_id"] == payload["gateway_request_id"] == request_id
    assert payload["status"] == "OK"
    jwks = httpx.get(f"{rig.gw_url}/.well-known/jwks.json", timeout=5).json()
    assert fal_signature_valid(jwks, received)
    assert Webhook(secret).verify(received.body, received.headers) == payload
    accepted = [w for w in rig.sim_stats()["webhooks"] if w["status_code"] == 200]
    assert accepted, "the simulator's signed webhook was accepted by the gateway"


def test_failure_and_cache_hit_payloads(rig: WebhookProcesses, receiver: Receiver) -> None:
    key = rig.new_key("shapes")
    rig.sim_fault(op="job", kind="fail", status=500)
    failed = _submit(rig, key, receiver.url("/failed"))
    _delivery(rig, failed, "delivered")
    error = json.loads(receiver.at("/failed")[0].body)
    assert (error["status"], error["request_id"]) == ("ERROR", failed)
    assert error["error"]
    seeded = {**T2V_INPUT, "seed": 99}
    first = _submit(rig, key, receiver.url("/first"), seeded)
    _delivery(rig, first, "delivered")
    hit = _submit(rig, key, receiver.url("/hit"), seeded)
    _delivery(rig, hit, "delivered")
    cached = json.loads(receiver.at("/hit")[0].body)
    assert (cached["status"], cached["request_id"]) == ("OK", hit)
    assert cached["payload"] == json.loads(receiver.at("/first")[0].body)["payload"]


def test_503_twice_then_200_is_three_attempts_with_one_id(rig: WebhookProcesses, receiver: Receiver) -> None:
    key = rig.new_key("flaky")
    receiver.script["/flaky"] = [503, 503]
    request_id = _submit(rig, key, receiver.url("/flaky"))
    delivery = _delivery(rig, request_id, "delivered")
    attempts = receiver.at("/flaky")
    assert len(attempts) == 3
    assert {a.headers["webhook-id"] for a in attempts} == {delivery["id"]}
    assert [a["status_code"] for a in delivery["history"]] == [503, 503, 200]


def test_deliveries_waiting_for_retries_survive_a_sigkill(rig: WebhookProcesses, receiver: Receiver) -> None:
    key = rig.new_key("survivor")
    paths = [f"/later/{n}" for n in range(5)]
    for path in paths:
        receiver.script[path] = [503] * 1000
    ids = [_submit(rig, key, receiver.url(path)) for path in paths]
    _until(lambda: all(receiver.at(path) for path in paths))  # every delivery failed once and waits for a retry
    rig.kill_gateway()
    for path in paths:
        receiver.script[path] = []
    rig.start_gateway()
    for request_id, path in zip(ids, paths, strict=True):
        delivery = _delivery(rig, request_id, "delivered")
        assert {a.headers["webhook-id"] for a in receiver.at(path)} == {delivery["id"]}
