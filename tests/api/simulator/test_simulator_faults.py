"""The fal simulator's fault injection, its ``/_sim`` control API and its call statistics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from service.domain.endpoints import IMAGE_TO_VIDEO, TEXT_TO_VIDEO
from service.simulator.app import FaultRule, SimulatorState
from service.simulator.storage import storage_of
from tests.support.clocks import ManualClock
from tests.support.endpoints import I2V, I2V_INPUT, T2V, T2V_INPUT
from tests.support.simulator import PROCESSING_SECONDS, QUEUE_SECONDS, make_state, path_of, sim_client, submit

DEFAULT_ERROR = {"detail": "Internal server error", "error_type": "runner_server_error"}
CALL_OPS = ["submit", "status", "result", "cancel"]


async def call(client: httpx.AsyncClient, op: str, request_id: str, endpoint: str = T2V) -> httpx.Response:
    """One queue call of kind ``op``; status/result/cancel address ``request_id``."""
    app_path = f"/fal-ai/bytedance/requests/{request_id}"
    if op == "submit":
        return await client.post(f"/{endpoint}", json=T2V_INPUT if endpoint == T2V else I2V_INPUT)
    if op == "status":
        return await client.get(f"{app_path}/status")
    if op == "result":
        return await client.get(app_path)
    return await client.put(f"{app_path}/cancel")


def normal_status(op: str) -> int:
    """What each call answers for a freshly submitted job when no fault intervenes."""
    return {"submit": 200, "status": 202, "result": 400, "cancel": 202}[op]


# --- http_error ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", CALL_OPS)
async def test_http_error_default_answers_once_then_calls_behave(
    client: httpx.AsyncClient, state: SimulatorState, op: str
) -> None:
    job = state.submit(TEXT_TO_VIDEO, b'{"prompt": "x"}')
    state.add_fault(FaultRule(op=op, kind="http_error"))

    failed = await call(client, op, job.id)
    assert failed.status_code == 500
    assert failed.json() == DEFAULT_ERROR
    assert failed.headers["x-fal-error-type"] == "runner_server_error"
    assert failed.headers["content-type"] == "application/json"
    assert failed.headers["x-fal-request-id"]

    assert (await call(client, op, job.id)).status_code == normal_status(op)
    assert state.stats()["calls"][op] == 2, "calls answered by a fault are counted too"


async def test_http_error_on_submit_creates_no_job(client: httpx.AsyncClient, state: SimulatorState) -> None:
    state.add_fault(FaultRule(op="submit", kind="http_error", status=503))

    assert (await call(client, "submit", "")).status_code == 503
    assert state.stats()["requests"] == {}


async def test_http_error_on_cancel_leaves_the_job_running(client: httpx.AsyncClient, state: SimulatorState) -> None:
    job = state.submit(TEXT_TO_VIDEO, b'{"prompt": "x"}')
    state.add_fault(FaultRule(op="cancel", kind="http_error"))

    assert (await call(client, "cancel", job.id)).status_code == 500
    assert state.stats()["requests"][job.id]["state"] == "IN_QUEUE"
    assert (await call(client, "status", job.id)).json().get("error") is None


@pytest.mark.parametrize("op", CALL_OPS)
async def test_http_error_with_custom_status_and_body(
    client: httpx.AsyncClient, state: SimulatorState, op: str
) -> None:
    job = state.submit(TEXT_TO_VIDEO, b'{"prompt": "x"}')
    body = {"detail": "Too many requests", "error_type": "rate_limited", "extra": [1, 2]}
    state.add_fault(FaultRule(op=op, kind="http_error", status=429, body=body))

    response = await call(client, op, job.id)

    assert response.status_code == 429
    assert response.json() == body
    assert response.headers["x-fal-error-type"] == "rate_limited"
    if op != "submit":
        assert response.headers["x-fal-request-id"] == job.id


async def test_times_counts_matching_calls_and_zero_means_forever(
    client: httpx.AsyncClient, state: SimulatorState
) -> None:
    job = state.submit(TEXT_TO_VIDEO, b'{"prompt": "x"}')
    state.add_fault(FaultRule(op="status", kind="http_error", status=502, times=2))
    state.add_fault(FaultRule(op="result", kind="http_error", status=503, times=0))

    assert [(await call(client, "status", job.id)).status_code for _ in range(3)] == [502, 502, 202]
    assert [(await call(client, "result", job.id)).status_code for _ in range(5)] == [503] * 5


async def test_faults_restricted_to_one_endpoint(client: httpx.AsyncClient, state: SimulatorState) -> None:
    i2v_job = state.submit(IMAGE_TO_VIDEO, b'{"prompt": "x", "image_url": "https://e.com/a.png"}')
    t2v_job = state.submit(TEXT_TO_VIDEO, b'{"prompt": "x"}')
    state.add_fault(FaultRule(op="submit", kind="http_error", endpoint_id=I2V, times=0))
    # Both jobs are polled at fal-ai/bytedance: the rule must tell them apart by the job's own endpoint.
    state.add_fault(FaultRule(op="status", kind="http_error", endpoint_id=I2V, times=0))

    assert (await call(client, "submit", "", T2V)).status_code == 200
    assert (await call(client, "submit", "", I2V)).status_code == 500
    assert (await call(client, "status", t2v_job.id)).status_code == 202
    assert (await call(client, "status", i2v_job.id)).status_code == 500


# --- timeout and slow ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["timeout", "slow"])
@pytest.mark.parametrize("op", CALL_OPS)
async def test_delayed_calls_answer_normally_after_the_delay(
    client: httpx.AsyncClient, state: SimulatorState, op: str, kind: str
) -> None:
    job = state.submit(TEXT_TO_VIDEO, b'{"prompt": "x"}')
    state.add_fault(FaultRule(op=op, kind=kind, delay_seconds=0.05))

    started = time.monotonic()
    response = await call(client, op, job.id)
    slow_elapsed = time.monotonic() - started
    assert response.status_code == normal_status(op)
    assert slow_elapsed >= 0.05

    started = time.monotonic()
    await call(client, op, job.id)
    assert time.monotonic() - started < 0.05, "the fault applied once only"


async def test_a_submit_whose_caller_timed_out_still_runs(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    state.add_fault(FaultRule(op="submit", kind="timeout", delay_seconds=5.0))

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(call(client, "submit", ""), timeout=0.05)

    requests = state.stats()["requests"]
    assert len(requests) == 1, "upstream accepted the job although the caller never saw the answer"
    (request_id,) = requests
    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS)
    assert (await call(client, "result", request_id)).status_code == 200


async def test_a_cancel_whose_caller_timed_out_still_cancels(client: httpx.AsyncClient, state: SimulatorState) -> None:
    job = state.submit(TEXT_TO_VIDEO, b'{"prompt": "x"}')
    state.add_fault(FaultRule(op="cancel", kind="timeout", delay_seconds=5.0))

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(call(client, "cancel", job.id), timeout=0.05)

    assert (await call(client, "result", job.id)).status_code == 499


# --- job failures --------------------------------------------------------------------------------------------------


async def test_failing_job_runs_its_course_then_completes_with_the_error(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    state.add_fault(FaultRule(op="job", kind="fail"))
    failing = await submit(client)
    healthy = await submit(client)

    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS / 2)
    running = (await client.get(path_of(failing["status_url"]), params={"logs": "1"})).json()
    assert running["status"] == "IN_PROGRESS"
    assert len(running["logs"]) == 2
    assert "error" not in running

    clock.advance(PROCESSING_SECONDS / 2)
    status = await client.get(path_of(failing["status_url"]))
    assert status.status_code == 200
    assert status.json()["status"] == "COMPLETED"
    assert status.json()["error"] == "Invalid status code: 500"
    assert status.json()["error_type"] == "runner_server_error"
    assert status.json()["metrics"] == {}
    result = await client.get(path_of(failing["response_url"]))
    assert (result.status_code, result.json()) == (500, DEFAULT_ERROR)
    assert result.headers["x-fal-error-type"] == "runner_server_error"

    assert (await client.get(path_of(healthy["response_url"]))).status_code == 200, "times=1: only the next job"


async def test_failing_job_with_custom_status_and_body(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    body = {"detail": [{"loc": ["body", "image_url"], "msg": "Image too large", "type": "image_too_large"}]}
    state.add_fault(FaultRule(op="job", kind="fail", status=422, body=body, endpoint_id=I2V))
    t2v = await submit(client)
    i2v = await submit(client, I2V, I2V_INPUT)
    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS)

    status = (await client.get(path_of(i2v["status_url"]))).json()
    assert (status["error"], status["error_type"]) == ("Invalid status code: 422", "runner_server_error")
    result = await client.get(path_of(i2v["response_url"]))
    assert (result.status_code, result.json()) == (422, body)
    assert (await client.get(path_of(t2v["response_url"]))).status_code == 200, "other endpoint unaffected"


async def test_failing_job_takes_error_type_from_the_body(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    body = {"detail": "No runner available", "error_type": "runner_scheduling_failure"}
    state.add_fault(FaultRule(op="job", kind="fail", status=503, body=body))
    handle = await submit(client)
    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS)

    status = (await client.get(path_of(handle["status_url"]))).json()

    assert (status["error"], status["error_type"]) == ("Invalid status code: 503", "runner_scheduling_failure")
    assert (await client.get(path_of(handle["response_url"]))).status_code == 503


async def test_a_rejected_body_does_not_use_up_a_job_failure(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    state.add_fault(FaultRule(op="job", kind="fail"))
    invalid = await submit(client, T2V, {"duration": "5"})
    valid = await submit(client)
    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS)

    assert (await client.get(path_of(invalid["response_url"]))).status_code == 422
    assert (await client.get(path_of(valid["response_url"]))).status_code == 500


@pytest.mark.parametrize(
    "fields",
    [
        {"op": "job", "kind": "http_error"},
        {"op": "job", "kind": "timeout"},
        {"op": "submit", "kind": "fail"},
        {"op": "status", "kind": "explode"},
        {"op": "status", "kind": "slow", "delay_seconds": -1},
        {"op": "status", "kind": "http_error", "status": 99},
        {"op": "status", "kind": "http_error", "surprise": True},
        {"op": "webhook", "kind": "http_error"},
        {"op": "webhook", "kind": "fail"},
        {"op": "job", "kind": "drop"},
        {"op": "submit", "kind": "stale"},
    ],
)
def test_nonsensical_fault_rules_are_rejected(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FaultRule.model_validate(fields)


# --- control API and stats -----------------------------------------------------------------------------------------


async def test_control_routes_are_not_taken_for_submits(client: httpx.AsyncClient, state: SimulatorState) -> None:
    assert (await client.get("/_sim/config")).status_code == 200
    assert (await client.post("/_sim/config", json={})).status_code == 200
    assert (await client.get("/_sim/faults")).status_code == 200
    assert (await client.get("/_sim/stats")).status_code == 200
    assert (await client.post("/_sim/reset")).status_code == 200

    assert state.stats()["calls"] == dict.fromkeys(CALL_OPS, 0)


async def test_control_api_needs_no_credentials(clock: ManualClock) -> None:
    async with sim_client(make_state(clock, fal_key="secret-key"), headers={}) as client:
        config = await client.get("/_sim/config")
        stats = await client.get("/_sim/stats")

    assert config.status_code == 200
    assert config.json()["fal_key"] == "***", "the key is never echoed"
    assert "secret-key" not in config.text
    assert stats.status_code == 200


async def test_config_over_http_is_a_validated_partial_update(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    updated = await client.post("/_sim/config", json={"queue_seconds": 0.0, "log_lines": 2})
    assert updated.status_code == 200
    assert updated.json() == {
        "queue_seconds": 0.0,
        "processing_seconds": PROCESSING_SECONDS,
        "log_lines": 2,
        "fal_key": None,
        "retention_seconds": 3600.0,
        "media_base_url": None,
        "webhook_user_id": "simulator-user",
        "webhook_signing_seed": None,
        "webhook_timeout_seconds": 5.0,
    }

    for bad in ({"queue_seconds": -1}, {"log_lines": "many"}, {"unknown": 1}):
        rejected = await client.post("/_sim/config", json=bad)
        assert rejected.status_code == 422, bad
        assert isinstance(rejected.json()["detail"], list)
    assert (await client.post("/_sim/config", json=[1])).status_code == 400
    assert state.config.queue_seconds == 0.0, "a rejected update changes nothing"

    handle = await submit(client)
    clock.advance(PROCESSING_SECONDS)
    logs = (await client.get(path_of(handle["status_url"]), params={"logs": "1"})).json()["logs"]
    assert len(logs) == 2


async def test_faults_over_http(client: httpx.AsyncClient) -> None:
    added = await client.post("/_sim/faults", json={"op": "submit", "kind": "http_error", "status": 429, "times": 2})
    assert added.status_code == 201
    assert added.json()["status"] == 429
    assert (await client.get("/_sim/faults")).json()[0]["remaining"] == 2

    assert (await call(client, "submit", "")).status_code == 429
    assert (await client.get("/_sim/faults")).json()[0]["remaining"] == 1
    assert (await call(client, "submit", "")).status_code == 429
    assert (await client.get("/_sim/faults")).json() == []
    assert (await call(client, "submit", "")).status_code == 200

    rejected = await client.post("/_sim/faults", json={"op": "job", "kind": "slow"})
    assert rejected.status_code == 422
    assert (await client.get("/_sim/faults")).json() == []


async def test_reset_over_http_restores_the_construction_config(clock: ManualClock) -> None:
    state = make_state(clock, queue_seconds=2.5)
    async with sim_client(state) as client:
        await submit(client)
        state.configure(queue_seconds=9.0, processing_seconds=1.0)
        state.add_fault(FaultRule(op="submit", kind="http_error", times=0))
        storage = storage_of(state)
        storage.files[storage.new_file("image/png")].data = b"png"
        storage.tokens.add("cdn-token")

        reset = await client.post("/_sim/reset")
        after = await submit(client)

    assert reset.json()["config"]["queue_seconds"] == 2.5
    assert (state.config.queue_seconds, state.config.processing_seconds) == (2.5, PROCESSING_SECONDS)
    stats = state.stats()
    assert list(stats["requests"]) == [after["request_id"]], "old jobs are gone and the fault no longer fires"
    assert stats["calls"] == {"submit": 1, "status": 0, "result": 0, "cancel": 0}
    assert storage.files == {}, "stored files are forgotten"
    assert storage.tokens == {"cdn-token"}, "a CDN token a caller cached stays valid"


async def test_stats_count_calls_per_request(client: httpx.AsyncClient, clock: ManualClock) -> None:
    first = await submit(client, I2V, {**I2V_INPUT, "extra": "kept"})
    second = await submit(client)
    for _ in range(3):
        await client.get(path_of(first["status_url"]))
    await client.get(path_of(first["response_url"]))
    await client.put(path_of(second["cancel_url"]))
    await client.get(f"/fal-ai/bytedance/requests/{'0' * 8}/status")
    clock.advance(QUEUE_SECONDS)

    stats = (await client.get("/_sim/stats")).json()

    assert stats["calls"] == {"submit": 2, "status": 4, "result": 1, "cancel": 1}
    assert stats["requests"] == {
        first["request_id"]: {
            "endpoint_id": I2V,
            "status_calls": 3,
            "result_calls": 1,
            "cancel_calls": 0,
            "state": "IN_PROGRESS",
            "input": {**I2V_INPUT, "extra": "kept"},
        },
        second["request_id"]: {
            "endpoint_id": T2V,
            "status_calls": 0,
            "result_calls": 0,
            "cancel_calls": 1,
            "state": "COMPLETED",
            "input": T2V_INPUT,
        },
    }
