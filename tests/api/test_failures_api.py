"""Upstream failures, timeouts and cancellation as clients see them, and Redis being down."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest
from redis.asyncio import Redis

from service.app import create_app
from service.simulator.faults import FaultRule
from tests.support.admin import FAL_KEY, key_auth
from tests.support.endpoints import T2V
from tests.support.gateway import Gateway, serve_in_process, simulator_transport
from tests.support.waiting import eventually


@pytest.mark.parametrize(
    ("status", "body", "expected_status", "expected_type"),
    [
        (503, {"detail": "No runners", "error_type": "runner_scheduling_failure"}, 503, "runner_scheduling_failure"),
        (500, {"detail": "boom", "error_type": "internal_error"}, 500, "internal_error"),
        (502, "<html>nginx bad gateway</html>", 502, "upstream_unavailable"),
        (429, {"detail": "Too many requests"}, 429, None),
        (401, {"detail": "Invalid key"}, 502, "upstream_auth_error"),
    ],
)
async def test_upstream_submit_errors_map_to_fal_shapes(
    gateway: Gateway, status: int, body: Any, expected_status: int, expected_type: str | None
) -> None:
    gateway.sim.add_fault(FaultRule(op="submit", kind="http_error", status=status, body=body))
    response = await gateway.submit()
    assert response.status_code == expected_status
    payload = response.json()
    assert "detail" in payload
    assert payload.get("error_type") == expected_type, "fal's own body passes through as it is"
    assert response.headers.get("x-fal-error-type") == expected_type
    assert FAL_KEY not in response.text
    assert gateway.sim.stats()["calls"]["submit"] == 1, "a submit fal answered is never retried"


async def test_submit_timeout_is_reported_and_never_retried(gateway: Gateway) -> None:
    gateway.sim.add_fault(FaultRule(op="submit", kind="timeout", delay_seconds=3.0))
    response = await gateway.submit()
    assert response.status_code == 504
    assert response.json()["error_type"] == "upstream_submit_unknown"
    assert response.headers["x-fal-request-timeout-type"] == "user", "so that fal's clients do not re-send it"
    assert gateway.sim.stats()["calls"]["submit"] == 1


async def test_a_failed_job_is_completed_with_error_and_its_result_is_the_error(gateway: Gateway) -> None:
    gateway.sim.add_fault(
        FaultRule(
            op="job", kind="fail", status=500, body={"detail": "GPU fell over", "error_type": "runner_server_error"}
        )
    )
    submitted = (await gateway.submit()).json()
    final = await gateway.wait_status(submitted["status_url"])
    assert final["error"]
    assert final["error_type"] == "runner_server_error"
    result = await gateway.client.get(submitted["response_url"], headers=await gateway.auth())
    assert result.status_code == 500
    assert result.json() == {"detail": "GPU fell over", "error_type": "runner_server_error"}
    assert result.headers["x-fal-error-type"] == "runner_server_error"


async def test_transient_upstream_status_errors_do_not_fail_the_job(gateway: Gateway) -> None:
    gateway.sim.add_fault(FaultRule(op="status", kind="http_error", status=503, times=3))
    gateway.sim.add_fault(FaultRule(op="status", kind="slow", delay_seconds=0.05, times=2))
    submitted = (await gateway.submit()).json()
    final = await gateway.wait_status(submitted["status_url"])
    assert "error" not in final


async def test_cancel_before_completion_then_status_and_result(gateway: Gateway) -> None:
    gateway.sim.configure(processing_seconds=30)
    submitted = (await gateway.submit()).json()
    headers = await gateway.auth()
    cancel = await gateway.client.put(submitted["cancel_url"], headers=headers)
    assert cancel.status_code == 202
    assert cancel.json() == {"status": "CANCELLATION_REQUESTED"}
    assert cancel.headers["x-fal-request-id"] == submitted["request_id"]
    final = await gateway.wait_status(submitted["status_url"])
    assert final["error_type"] == "client_cancelled"
    result = await gateway.client.get(submitted["response_url"], headers=headers)
    assert result.status_code == 499
    again = await gateway.client.put(submitted["cancel_url"], headers=headers)
    assert again.status_code == 400
    assert again.json() == {"status": "ALREADY_COMPLETED"}


async def test_cancel_after_completion_is_400_already_completed(gateway: Gateway) -> None:
    submitted = (await gateway.submit()).json()
    await gateway.wait_status(submitted["status_url"])
    response = await gateway.client.put(submitted["cancel_url"], headers=await gateway.auth())
    assert response.status_code == 400
    assert response.json() == {"status": "ALREADY_COMPLETED"}
    assert gateway.sim.stats()["calls"]["cancel"] == 0, "a completed job needs no upstream call"


async def test_redis_down_refuses_paid_work_with_503_and_sends_nothing(gateway: Gateway) -> None:
    key = await gateway.key_for("acme")
    dead = Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True, socket_connect_timeout=0.2)
    app = create_app(
        gateway.settings.model_copy(update={"tracker_enabled": False}),
        redis=dead,
        upstream_transport=simulator_transport(gateway.sim),
    )
    async with serve_in_process(app) as client:
        response = await client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=key_auth(key))
        ready = await client.get("/readyz")
    await dead.aclose()
    assert response.status_code == 503
    assert response.json()["error_type"] == "state_store_unavailable"
    assert response.headers["x-fal-request-id"]
    assert ready.status_code == 503
    assert gateway.sim.stats()["calls"]["submit"] == 0


async def test_connect_failures_on_submit_are_retried_because_nothing_was_sent(gateway: Gateway) -> None:
    from service.domain.endpoints import TEXT_TO_VIDEO  # noqa: PLC0415
    from service.metrics import Metrics  # noqa: PLC0415
    from service.upstream.fal import FalClient  # noqa: PLC0415

    attempts: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        if len(attempts) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"request_id": "up-1", "status": "IN_QUEUE", "queue_position": 0})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://fal") as http:
        fal = FalClient(http, metrics=Metrics(), submit_timeout=1, submit_connect_retries=2)
        submitted = await fal.submit(TEXT_TO_VIDEO, {"prompt": "x"}, headers={}, query={})
    assert submitted.upstream_id == "up-1"
    assert len(attempts) == 3


async def test_the_gateway_sends_its_own_fal_key_upstream(gateway: Gateway) -> None:
    gateway.sim.configure(fal_key="a-different-key")
    response = await gateway.submit()
    assert response.status_code == 502
    assert response.json()["error_type"] == "upstream_auth_error"


async def test_queue_positions_are_reported_while_queued(gateway: Gateway) -> None:
    gateway.sim.configure(queue_seconds=30)
    bodies = [(await gateway.submit()).json() for _ in range(3)]
    headers = await gateway.auth()

    async def positions_known() -> list[int] | None:
        statuses = [(await gateway.client.get(b["status_url"], headers=headers)).json() for b in bodies]
        found = [s["queue_position"] for s in statuses]
        return found if found == [0, 1, 2] else None

    assert await eventually(positions_known) == [0, 1, 2]


async def test_recording_an_accepted_submit_survives_a_brief_redis_failure(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: PLC0415

    from service.jobs.store import JobStore  # noqa: PLC0415

    original = JobStore.update
    failures = {"left": 2}

    async def flaky_update(self: JobStore, request_id: str, **values: Any) -> bool:
        if "upstream_id" in values and failures["left"] > 0:
            failures["left"] -= 1
            raise RedisConnectionError("blip")
        return await original(self, request_id, **values)

    monkeypatch.setattr(JobStore, "update", flaky_update)
    submitted = await gateway.submit()
    assert submitted.status_code == 200
    assert failures["left"] == 0, "the write failed twice and was retried"
    final = await gateway.wait_status(submitted.json()["status_url"])
    assert "error" not in final
    assert gateway.sim.stats()["calls"]["submit"] == 1


async def test_a_cancel_that_arrives_while_the_submit_is_in_flight_is_sent_to_fal_once_it_has_an_id(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The submitter reads the record back in the round trip that writes fal's id, and acts on the flag it finds."""
    from service import keys  # noqa: PLC0415
    from service.upstream.fal import FalClient, Submitted  # noqa: PLC0415

    gateway.sim.configure(processing_seconds=30)
    headers = await gateway.auth()
    original = FalClient.submit
    cancels: list[int] = []

    async def submit_then_cancelled(self: FalClient, *args: Any, **kwargs: Any) -> Submitted:
        submitted = await original(self, *args, **kwargs)
        (rid,) = cast("list[str]", await gateway.redis.zrange(keys.tenant_requests("acme"), 0, -1))
        answer = await gateway.client.put(f"/queue/fal-ai/bytedance/requests/{rid}/cancel", headers=headers)
        cancels.append(answer.status_code)
        return submitted

    monkeypatch.setattr(FalClient, "submit", submit_then_cancelled)
    submitted = await gateway.submit()
    assert (submitted.status_code, cancels) == (200, [202])
    assert gateway.sim.stats()["calls"]["cancel"] == 1, "sent by the submitter, which saw the flag"
    final = await gateway.wait_status(submitted.json()["status_url"])
    assert final["error_type"] == "client_cancelled"
