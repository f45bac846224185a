"""The simulator's fal webhooks: payload, headers and signature, checked by a reference verifier and the JWKS."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from service.simulator.app import FaultRule, SimulatorConfig, SimulatorState
from tests.support.clocks import ManualClock
from tests.support.endpoints import T2V
from tests.support.simulator import (
    HOOK_URL,
    PROCESSING_SECONDS,
    QUEUE_SECONDS,
    WALL_START,
    WebhookReceiver,
    check_delivery,
    ed25519_verify,
    jwks_key,
    path_of,
    signature_verifies,
    submit,
)

HOOK = {"fal_webhook": HOOK_URL}
DONE = int(WALL_START + QUEUE_SECONDS + PROCESSING_SECONDS)  # wall time (s) when a job submitted at the start ends
# RFC 8032 §7.1, test 1: a seed, its public key, and the signature of the empty message.
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- the reference verifier and the key ----------------------------------------------------------------------------


def test_the_reference_verifier_follows_rfc_8032() -> None:
    assert ed25519_verify(RFC_PUBLIC, b"", RFC_SIGNATURE)
    assert not ed25519_verify(RFC_PUBLIC, b"x", RFC_SIGNATURE)
    assert not ed25519_verify(RFC_PUBLIC, b"", RFC_SIGNATURE[:-1] + b"\x0c")


async def test_jwks_is_public_and_each_state_has_its_own_key(clock: ManualClock) -> None:
    first, second = SimulatorState(clock=clock), SimulatorState(clock=clock)

    assert await jwks_key(first) == await jwks_key(first)
    assert await jwks_key(first) != await jwks_key(second)


@pytest.mark.parametrize("padding", ["", "="])
async def test_a_configured_seed_is_the_published_key(clock: ManualClock, padding: str) -> None:
    state = SimulatorState(SimulatorConfig(webhook_signing_seed=b64url(RFC_SEED) + padding), clock=clock)

    assert await jwks_key(state) == RFC_PUBLIC
    assert state.config.public_view()["webhook_signing_seed"] == "***", "the seed is never echoed"


@pytest.mark.parametrize("seed", ["", "c2hvcnQ", b64url(RFC_SEED)[:-1] + "!", b64url(RFC_SEED + b"\0")])
def test_a_seed_that_is_not_32_bytes_of_base64url_is_rejected(seed: str) -> None:
    with pytest.raises(ValidationError):
        SimulatorConfig(webhook_signing_seed=seed)


# --- deliveries ----------------------------------------------------------------------------------------------------


async def test_a_completed_job_gets_one_signed_webhook_with_its_result(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    handle = await submit(client, params=HOOK)
    rid = handle["request_id"]
    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS - 0.01)
    assert await state.deliver_due_webhooks() == 0, "nothing before the job completes"
    clock.advance(0.01)

    assert await state.deliver_due_webhooks() == 1
    assert await state.deliver_due_webhooks() == 0, "once"

    (request,) = receiver.requests
    body = check_delivery(request, rid, DONE)
    result = (await client.get(path_of(handle["response_url"]))).json()
    assert body == {"request_id": rid, "gateway_request_id": rid, "status": "OK", "payload": result}
    assert body["payload"]["video"]["url"].startswith("http://sim/media/"), "output URLs on the submit's base URL"
    assert signature_verifies(request, await jwks_key(state))
    assert state.stats()["webhooks"] == [
        {"request_id": rid, "url": HOOK_URL, "attempt": 1, "status_code": 200, "error": None, "fault": None}
    ]


@pytest.mark.parametrize(
    ("fault", "body", "status"),
    [
        (FaultRule(op="job", kind="fail"), None, 500),
        (FaultRule(op="job", kind="fail", status=503, body={"detail": "busy", "error_type": "x"}), None, 503),
        (None, {"duration": "5"}, 422),
    ],
    ids=["fail", "fail-custom", "invalid-input"],
)
async def test_a_failed_job_gets_an_error_webhook_with_its_error_body(
    client: httpx.AsyncClient,
    state: SimulatorState,
    clock: ManualClock,
    receiver: WebhookReceiver,
    fault: FaultRule | None,
    body: Any,
    status: int,
) -> None:
    if fault is not None:
        state.add_fault(fault)
    handle = await submit(client, T2V, body, params=HOOK)
    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS)

    await state.deliver_due_webhooks()

    (request,) = receiver.requests
    rid = handle["request_id"]
    result = await client.get(path_of(handle["response_url"]))
    assert result.status_code == status
    assert check_delivery(request, rid, DONE) == {
        "request_id": rid,
        "gateway_request_id": rid,
        "status": "ERROR",
        "error": f"Invalid status code: {status}",
        "payload": result.json(),
    }
    assert signature_verifies(request, await jwks_key(state))


async def test_a_cancelled_job_gets_its_webhook_when_cancelled(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    handle = await submit(client, params=HOOK)
    clock.advance(QUEUE_SECONDS)
    assert (await client.put(path_of(handle["cancel_url"]))).status_code == 202

    assert await state.deliver_due_webhooks() == 1
    clock.advance(PROCESSING_SECONDS)
    assert await state.deliver_due_webhooks() == 0

    (request,) = receiver.requests
    rid = handle["request_id"]
    result = await client.get(path_of(handle["response_url"]))
    assert check_delivery(request, rid, int(WALL_START + QUEUE_SECONDS)) == {
        "request_id": rid,
        "gateway_request_id": rid,
        "status": "ERROR",
        "error": "Invalid status code: 499",
        "payload": result.json(),
    }
    assert signature_verifies(request, await jwks_key(state))


async def test_the_user_id_and_the_key_are_configurable(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    seed = b64url(RFC_SEED)
    update = {"webhook_user_id": "github|42", "webhook_signing_seed": seed}
    assert (await client.post("/_sim/config", json=update)).json()["webhook_signing_seed"] == "***"
    handle = await submit(client, params=HOOK)
    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS)

    await state.deliver_due_webhooks()

    (request,) = receiver.requests
    check_delivery(request, handle["request_id"], DONE, user_id="github|42")
    assert signature_verifies(request, RFC_PUBLIC)
    assert (await client.post("/_sim/config", json={"webhook_user_id": "two words"})).status_code == 422
