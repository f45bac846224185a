"""The simulator's X-Fal-Request-Timeout (docs/protocol.md §10): a job still queued at its start deadline ends with
fal's 504 start timeout, whose result carries ``X-Fal-Request-Timeout-Type: user``; one that started in time runs."""

from __future__ import annotations

import httpx
import pytest

from service.simulator.faults import FaultRule
from service.simulator.state import SimulatorState
from tests.support.clocks import ManualClock
from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.simulator import PROCESSING_SECONDS, QUEUE_SECONDS, path_of


async def _submit(client: httpx.AsyncClient, timeout: str) -> httpx.Response:
    return await client.post(f"/{T2V}", json=T2V_INPUT, headers={"X-Fal-Request-Timeout": timeout})


async def test_a_job_still_queued_at_its_deadline_is_a_start_timeout(
    client: httpx.AsyncClient, clock: ManualClock, state: SimulatorState
) -> None:
    state.add_fault(FaultRule(op="job", kind="fail", status=500))
    submitted = await _submit(client, str(QUEUE_SECONDS / 2))
    assert submitted.status_code == 200
    status_url, result_url = path_of(submitted.json()["status_url"]), path_of(submitted.json()["response_url"])
    assert (await client.get(status_url)).json()["status"] == "IN_QUEUE"
    clock.advance(QUEUE_SECONDS / 2)
    status = (await client.get(status_url, params={"logs": "1"})).json()
    assert (status["status"], status["error"], status["error_type"]) == (
        "COMPLETED",
        "Request timed out",
        "request_timeout",
    )
    assert status["logs"] == [], "it never reached a runner"
    result = await client.get(result_url)
    assert result.status_code == 504
    assert result.json() == {"detail": "Request timed out", "error_type": "request_timeout"}
    assert result.headers["x-fal-request-timeout-type"] == "user"
    assert result.headers["x-fal-error-type"] == "request_timeout"
    assert len(state.faults.snapshot()) == 1, "the job fault was left for a job that runs"


async def test_a_job_that_starts_in_time_runs_to_the_end(client: httpx.AsyncClient, clock: ManualClock) -> None:
    submitted = await _submit(client, str(QUEUE_SECONDS * 2))
    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS)
    result = await client.get(path_of(submitted.json()["response_url"]))
    assert result.status_code == 200, "the deadline stops counting once the job runs"
    assert "x-fal-request-timeout-type" not in result.headers


@pytest.mark.parametrize("value", ["soon", "0.05", "-1", "nan"])
async def test_a_bad_deadline_is_a_400_and_no_job(client: httpx.AsyncClient, state: SimulatorState, value: str) -> None:
    refused = await _submit(client, value)
    assert refused.status_code == 400
    assert refused.json()["error_type"] == "bad_request"
    assert state.stats()["requests"] == {}
