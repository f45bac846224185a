"""When, where and how often the simulator sends fal webhooks: the query parameter, retries, drops, the loop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, post

from service.http import in_process_transport
from service.simulator.app import SimulatorState, create_simulator_app
from service.simulator.webhooks import MAX_ATTEMPTS, RETRY_DELAYS
from tests.support.clocks import ManualClock
from tests.support.endpoints import I2V, I2V_INPUT, T2V
from tests.support.simulator import (
    HOOK_URL,
    PROCESSING_SECONDS,
    QUEUE_SECONDS,
    WebhookReceiver,
    make_state,
    sim_client,
    submit,
)

HOOK = {"fal_webhook": HOOK_URL}
RUN = QUEUE_SECONDS + PROCESSING_SECONDS


def hooked(state: SimulatorState, answers: list[int | Exception] | None = None) -> WebhookReceiver:
    receiver = WebhookReceiver(answers or [])
    state.webhook_transport = receiver.transport
    return receiver


def sent(state: SimulatorState) -> list[tuple[int, int | None, str | None]]:
    """Each recorded attempt as (attempt, status code, error)."""
    return [(d["attempt"], d["status_code"], d["error"]) for d in state.stats()["webhooks"]]


async def test_no_webhook_for_a_job_submitted_without_fal_webhook(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    receiver = hooked(state)
    await submit(client)
    clock.advance(RUN)

    assert await state.deliver_due_webhooks() == 0
    assert receiver.requests == []
    assert state.stats()["webhooks"] == []
    assert state.stats()["webhooks_pending"] == 0


@pytest.mark.parametrize(
    "url", ["", "not a url", "/relative/path", "ftp://host/hook", "http://", "http://host:99999/", "http://a b/"]
)
async def test_a_bad_fal_webhook_is_a_422_and_queues_nothing(
    client: httpx.AsyncClient, state: SimulatorState, url: str
) -> None:
    response = await client.post(f"/{T2V}", params={"fal_webhook": url}, json={"prompt": "x"})

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["loc"], error["input"]) == (["query", "fal_webhook"], url)
    assert state.stats()["requests"] == {}


async def test_each_of_several_jobs_gets_its_own_webhook_when_it_ends(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    receiver = hooked(state)
    first = await submit(client, params=HOOK)
    clock.advance(1.0)
    second = await submit(client, I2V, I2V_INPUT, params={"fal_webhook": "https://other.test/x?tenant=1"})
    third = await submit(client, params=HOOK)

    clock.advance(RUN - 1.0)
    assert await state.deliver_due_webhooks() == 1
    clock.advance(1.0)
    assert await state.deliver_due_webhooks() == 2

    ids = [json.loads(r.content)["request_id"] for r in receiver.requests]
    assert ids[0] == first["request_id"]
    assert sorted(ids[1:]) == sorted([second["request_id"], third["request_id"]])
    assert str(receiver.requests[1 + ids[1:].index(second["request_id"])].url) == "https://other.test/x?tenant=1"


async def test_a_receiver_answering_500_then_200_gets_two_attempts(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    receiver = hooked(state, [500])
    await submit(client, params=HOOK)
    clock.advance(RUN)

    await state.deliver_due_webhooks()
    assert state.stats()["webhooks_pending"] == 1
    clock.advance(RETRY_DELAYS[0] - 0.01)
    assert await state.deliver_due_webhooks() == 0, "the retry waits for its backoff"
    clock.advance(0.01)
    assert await state.deliver_due_webhooks() == 1
    clock.advance(3600)
    assert await state.deliver_due_webhooks() == 0

    assert sent(state) == [(1, 500, None), (2, 200, None)]
    first, second = receiver.requests
    assert first.content == second.content, "the same payload on every attempt"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (503, None),
        (httpx.ConnectError("refused"), "ConnectError: refused"),
        (RuntimeError("boom"), "RuntimeError: boom"),
    ],
    ids=["503", "network", "receiver-raises"],
)
async def test_a_failing_receiver_gets_a_bounded_number_of_attempts(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock, answer: int | Exception, error: str | None
) -> None:
    receiver = hooked(state, [answer] * 10)
    await submit(client, params=HOOK)
    clock.advance(RUN)

    for _ in range(10):
        await state.deliver_due_webhooks()
        clock.advance(max(RETRY_DELAYS))

    assert len(receiver.requests) == MAX_ATTEMPTS == 3
    status = answer if isinstance(answer, int) else None
    assert sent(state) == [(attempt, status, error) for attempt in range(1, MAX_ATTEMPTS + 1)]
    assert state.stats()["webhooks_pending"] == 0


async def test_redirects_are_never_followed(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    receiver = hooked(state, [307])
    await submit(client, params=HOOK)
    clock.advance(RUN)

    await state.deliver_due_webhooks()
    clock.advance(RETRY_DELAYS[0])
    await state.deliver_due_webhooks()

    assert [str(r.url) for r in receiver.requests] == [HOOK_URL, HOOK_URL]
    assert sent(state) == [(1, 307, None), (2, 200, None)]


async def test_without_a_transport_webhooks_go_to_the_network(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    await submit(client, params={"fal_webhook": "http://127.0.0.1:9/hook"})  # discard port: nothing listens
    clock.advance(RUN)

    await state.deliver_due_webhooks()

    ((attempt, status, error),) = sent(state)
    assert (attempt, status) == (1, None)
    assert error is not None
    assert error.startswith("ConnectError")


async def test_reset_forgets_pending_webhooks_and_the_delivery_log(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    receiver = hooked(state)
    await submit(client, params=HOOK)
    clock.advance(RUN)
    await state.deliver_due_webhooks()
    await submit(client, params=HOOK)

    assert (await client.post("/_sim/reset")).status_code == 200
    clock.advance(RUN)

    assert await state.deliver_due_webhooks() == 0
    assert len(receiver.requests) == 1
    assert (state.stats()["webhooks"], state.stats()["webhooks_pending"]) == ([], 0)


async def test_an_in_process_asgi_receiver_gets_the_raw_body(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    got: list[tuple[bytes, dict[str, str]]] = []

    @post("/fal/webhook", status_code=204)
    async def hook(request: Request[Any, Any, Any]) -> None:
        got.append((await request.body(), dict(request.headers)))

    state.webhook_transport = in_process_transport(Litestar([hook], logging_config=None, openapi_config=None))
    handle = await submit(client, params=HOOK)
    clock.advance(RUN)

    await state.deliver_due_webhooks()

    ((body, headers),) = got
    assert json.loads(body)["request_id"] == handle["request_id"]
    assert headers["x-fal-webhook-request-id"] == handle["request_id"]
    assert sent(state) == [(1, 204, None)]


async def test_the_app_lifespan_delivers_due_webhooks_by_itself(clock: ManualClock) -> None:
    state = make_state(clock)
    receiver = hooked(state)
    app = create_simulator_app(state)
    async with app.lifespan(), sim_client(state) as client:
        handle = await submit(client, params=HOOK)
        clock.advance(RUN)
        await asyncio.wait_for(receiver.arrived.wait(), timeout=5)

    (request,) = receiver.requests
    assert json.loads(request.content)["request_id"] == handle["request_id"]


async def test_the_loop_survives_a_failing_round(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    state = make_state(clock)
    rounds: list[int] = []
    second_round = asyncio.Event()

    async def flaky() -> int:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("a bug in one round")
        second_round.set()
        return 0

    monkeypatch.setattr(state, "deliver_due_webhooks", flaky)
    loop = asyncio.create_task(state.run_webhook_loop(interval=0))
    try:
        await asyncio.wait_for(second_round.wait(), timeout=5)
    finally:
        loop.cancel()
    assert rounds[:2] == [0, 1]
