"""The simulator's webhook faults: dropped, badly signed, stale and duplicated deliveries, and whom they hit."""

from __future__ import annotations

import json

import httpx

from service.simulator.app import FaultRule, SimulatorState
from tests.support.clocks import ManualClock
from tests.support.endpoints import I2V, I2V_INPUT
from tests.support.simulator import (
    HOOK_URL,
    PROCESSING_SECONDS,
    QUEUE_SECONDS,
    WALL_START,
    WebhookReceiver,
    check_delivery,
    jwks_key,
    signature_verifies,
    submit,
)

HOOK = {"fal_webhook": HOOK_URL}
RUN = QUEUE_SECONDS + PROCESSING_SECONDS
DONE = int(WALL_START + RUN)


async def test_drop_fault_sends_nothing_and_can_target_one_endpoint(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    added = await client.post("/_sim/faults", json={"op": "webhook", "kind": "drop", "endpoint_id": I2V, "times": 0})
    assert added.status_code == 201
    dropped = await submit(client, I2V, I2V_INPUT, params=HOOK)
    kept = await submit(client, params=HOOK)
    clock.advance(RUN)

    await state.deliver_due_webhooks()
    clock.advance(3600)
    await state.deliver_due_webhooks()

    assert [json.loads(r.content)["request_id"] for r in receiver.requests] == [kept["request_id"]]
    by_id = {d["request_id"]: d for d in state.stats()["webhooks"]}
    assert by_id[dropped["request_id"]]["fault"] == "drop"
    assert by_id[dropped["request_id"]]["status_code"] is None
    assert len(state.stats()["webhooks"]) == 2, "a drop is never retried"


async def test_a_webhook_fault_armed_before_completion_applies(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    await submit(client, params=HOOK)
    state.add_fault(FaultRule(op="webhook", kind="drop"))
    clock.advance(RUN)

    await state.deliver_due_webhooks()

    assert receiver.requests == []
    assert state.faults.snapshot() == [], "taken by the webhook's first attempt"


async def test_bad_signature_fault_signs_with_a_key_the_jwks_does_not_list(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    state.add_fault(FaultRule(op="webhook", kind="bad_signature"))
    forged = await submit(client, params=HOOK)
    honest = await submit(client, params=HOOK)
    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS)

    await state.deliver_due_webhooks()

    key = await jwks_key(state)
    first, second = receiver.requests
    check_delivery(first, forged["request_id"], DONE)
    assert not signature_verifies(first, key)
    assert len(bytes.fromhex(first.headers["x-fal-webhook-signature"])) == 64, "a real signature, by another key"
    check_delivery(second, honest["request_id"], DONE)
    assert signature_verifies(second, key), "times=1: only the next webhook"
    assert [d["fault"] for d in state.stats()["webhooks"]] == ["bad_signature", None]


async def test_stale_fault_dates_the_delivery_ten_minutes_back(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    state.add_fault(FaultRule(op="webhook", kind="stale"))
    handle = await submit(client, params=HOOK)
    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS)

    await state.deliver_due_webhooks()

    (request,) = receiver.requests
    check_delivery(request, handle["request_id"], DONE - 600)
    assert signature_verifies(request, await jwks_key(state)), "correctly signed, only old"


async def test_duplicate_fault_sends_the_same_signed_request_twice(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    state.add_fault(FaultRule(op="webhook", kind="duplicate"))
    handle = await submit(client, params=HOOK)
    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS)

    assert await state.deliver_due_webhooks() == 1

    first, second = receiver.requests
    assert first.content == second.content
    assert dict(first.headers) == dict(second.headers)
    check_delivery(first, handle["request_id"], DONE)
    assert signature_verifies(first, await jwks_key(state))
    assert [(d["attempt"], d["fault"]) for d in state.stats()["webhooks"]] == [(1, "duplicate"), (1, "duplicate")]
