"""fal's circuit breakers and retries, through the app and the simulator, then FalClient against a scripted fal. The
breakers run on a hand-driven clock; retry waits are recorded, never slept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from service import container
from service.app import create_app
from service.config import Settings
from service.domain.endpoints import TEXT_TO_VIDEO
from service.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from service.metrics import Metrics
from service.simulator.app import SimulatorState
from service.simulator.faults import FaultRule
from service.upstream.fal import FalClient, RequestNotSent, UpstreamCircuitOpen
from tests.support.admin import create_tenant
from tests.support.clocks import ManualClock, ShiftableClock
from tests.support.gateway import Gateway, serve_in_process, simulator_transport
from tests.support.waiting import eventually

FAILURES, COOLDOWN = 5, 10.0  # FalClient's defaults, which the settings will carry
STATES = ("closed", "half_open", "open")


class Harness:
    """What the test injects into the app's FalClient: its clock, a sleep that records and skips each retry wait
    (moving the clock as the wait would have), no jitter; and a Retry-After the upstream adds to its 429s and 503s."""

    def __init__(self) -> None:
        self.clock = ManualClock(1000.0)
        self.waits: list[float] = []
        self.retry_after: str | None = None

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    def fal_client(self, *args: Any, **kwargs: Any) -> FalClient:
        return FalClient(*args, **{**kwargs, "clock": self.clock, "sleep": self.sleep, "rand": lambda: 1.0})


class RetryAfterTransport(httpx.AsyncBaseTransport):
    """The simulator, plus the harness's Retry-After on its 429 and 503 answers (the simulator sends none)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, harness: Harness) -> None:
        self._inner, self._harness = inner, harness

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if self._harness.retry_after is not None and response.status_code in {429, 503}:
            response.headers["Retry-After"] = self._harness.retry_after
        return response


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> Harness:
    harness = Harness()
    monkeypatch.setattr(container, "FalClient", harness.fal_client)
    return harness


@pytest.fixture
async def gateway(
    harness: Harness, redis_client: Redis, sim: SimulatorState, settings: Settings
) -> AsyncIterator[Gateway]:
    metrics, clock = Metrics(), ShiftableClock()
    upstream = RetryAfterTransport(simulator_transport(sim), harness)
    app = create_app(settings, redis=redis_client, upstream_transport=upstream, metrics=metrics, clock=clock)
    async with serve_in_process(app) as client:
        yield Gateway(client, sim, settings, metrics, redis_client, clock, app=app)


async def _circuits(gateway: Gateway) -> Any:
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200, "an open breaker never makes the pod unready"
    return ready.json()["upstream"]


def _sample(gateway: Gateway, name: str, **labels: str) -> float:
    return gateway.metrics.registry.get_sample_value(name, labels) or 0.0


async def _tracker_errors_over(gateway: Gateway, count: int) -> bool:
    return _sample(gateway, "gateway_tracker_polls_total", outcome="error") > count


def _calls(gateway: Gateway, op: str) -> Any:
    return gateway.sim.stats()["calls"][op]


async def _open_submit_circuit(gateway: Gateway) -> None:
    gateway.sim.add_fault(FaultRule(op="submit", kind="http_error", status=503, times=FAILURES))
    for _ in range(FAILURES):
        refused = await gateway.submit()
        assert (refused.status_code, refused.json()["error_type"]) == (503, "runner_server_error"), "fal's own answer"


async def test_failing_submits_open_the_circuit_then_submits_fail_fast_sending_and_reserving_nothing(
    gateway: Gateway, harness: Harness
) -> None:
    await create_tenant(gateway.client, "acme", budget={"limit_micros": 10_000_000, "period": "month"})
    await _open_submit_circuit(gateway)
    fast = await gateway.submit()
    body = fast.json()
    assert (fast.status_code, body) == (503, {"detail": body["detail"], "error_type": "upstream_circuit_open"})
    assert "nothing was sent" in body["detail"]
    assert (fast.headers["x-fal-error-type"], fast.headers["retry-after"]) == ("upstream_circuit_open", "10")
    assert fast.headers["x-fal-request-id"]
    assert _calls(gateway, "submit") == FAILURES, "the open circuit sent nothing"
    usage = (await gateway.client.get("/admin/tenants/acme/usage", headers=gateway.admin)).json()
    assert (usage["reserved_micros"], usage["spent_micros"]) == (0, 0), "nothing reserved, nothing charged"
    assert harness.waits == [], "a submit fal answered is never retried"
    assert await _circuits(gateway) == {"submit": "open", "status": "closed", "result": "closed", "cancel": "closed"}
    assert _sample(gateway, "gateway_upstream_circuit_state", op="submit") == 2, "2: open"


async def test_after_the_cool_down_a_probe_goes_through_a_failed_one_reopens_for_longer_a_good_one_closes(
    gateway: Gateway, harness: Harness
) -> None:
    await _open_submit_circuit(gateway)
    gateway.sim.add_fault(FaultRule(op="submit", kind="http_error", status=502))
    harness.clock.advance(COOLDOWN - 0.1)
    assert (await gateway.submit()).json()["error_type"] == "upstream_circuit_open"
    harness.clock.advance(0.1)
    assert (await gateway.submit()).status_code == 502, "the probe reached fal, which failed again"
    again = await gateway.submit()
    assert (again.json()["error_type"], again.headers["retry-after"]) == ("upstream_circuit_open", "20")
    harness.clock.advance(COOLDOWN)
    assert (await gateway.submit()).json()["error_type"] == "upstream_circuit_open", "the cool-down doubled"
    harness.clock.advance(COOLDOWN)
    probe = await gateway.submit()
    assert probe.status_code == 200, probe.text
    assert _calls(gateway, "submit") == FAILURES + 2
    assert (await _circuits(gateway))["submit"] == "closed"
    moves = [_sample(gateway, "gateway_upstream_circuit_transitions_total", op="submit", to=to) for to in STATES]
    assert moves == [1, 2, 2], "closed once; half-open twice; open twice"
    assert "error" not in await gateway.wait_status(probe.json()["status_url"])
    assert (await gateway.submit()).status_code == 200, "closed again: submits flow"


async def test_fals_definitive_answers_never_open_the_circuit(gateway: Gateway) -> None:
    detail = {"detail": [{"loc": ["body", "prompt"], "msg": "too long", "type": "value_error"}]}
    gateway.sim.add_fault(FaultRule(op="submit", kind="http_error", status=422, body=detail, times=FAILURES + 1))
    for _ in range(FAILURES + 1):
        assert (await gateway.submit()).status_code == 422
    assert _calls(gateway, "submit") == FAILURES + 1
    assert (await _circuits(gateway))["submit"] == "closed"


@pytest.mark.parametrize(("status", "retry_after", "waited"), [(429, "2", 2.0), (503, "3600", 5.0)])
async def test_status_polls_are_retried_after_fals_retry_after_and_the_job_completes(
    gateway: Gateway, harness: Harness, status: int, retry_after: str, waited: float
) -> None:
    harness.retry_after = retry_after
    gateway.sim.add_fault(FaultRule(op="status", kind="http_error", status=status, times=2))
    submitted = (await gateway.submit()).json()
    assert "error" not in await gateway.wait_status(submitted["status_url"])
    [job] = gateway.sim.stats()["requests"].values()
    assert job["status_calls"] >= 3, "two refused attempts, then the retry that got through"
    assert harness.waits == [waited, waited], "fal's Retry-After, capped at 5 s, instead of the short backoff"
    reason = "rate_limited" if status == 429 else "server_error"
    assert _sample(gateway, "gateway_upstream_retries_total", op="status", reason=reason) == 2
    assert not await _tracker_errors_over(gateway, 0), "the retries hid the blip from the tracker"
    assert (await _circuits(gateway))["status"] == "closed", "one call, one success"


async def test_an_open_status_circuit_makes_tracker_polls_fail_fast_until_a_probe_closes_it(
    gateway: Gateway, harness: Harness
) -> None:
    attempts = FAILURES * 3  # each poll is one call of three attempts
    gateway.sim.add_fault(FaultRule(op="status", kind="http_error", status=503, times=attempts))
    submitted = (await gateway.submit()).json()
    await eventually(lambda: _tracker_errors_over(gateway, FAILURES + 1))  # the breaker refused two polls
    assert (await _circuits(gateway))["status"] == "open"
    assert _calls(gateway, "status") == attempts, "polls refused by the open circuit sent nothing"
    assert len(harness.waits) == FAILURES * 2
    harness.clock.advance(COOLDOWN)
    assert "error" not in await gateway.wait_status(submitted["status_url"]), "the tracker kept the job"
    assert (await _circuits(gateway))["status"] == "closed"


# --- FalClient against a scripted fal ------------------------------------------------------------------------------


class ScriptedFal:
    """fal answering from a script, an entry per request (the last one repeats): ``(status, body[, headers])``, or an
    httpx exception class to raise."""

    def __init__(self, *script: Any) -> None:
        self.script, self.seen = list(script), 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen += 1
        entry = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(entry, type):
            raise entry("scripted", request=request)
        return httpx.Response(entry[0], json=entry[1], headers=entry[2] if len(entry) > 2 else None)


@asynccontextmanager
async def _client(harness: Harness, fal: ScriptedFal, *, read: float = 30.0, **options: Any) -> AsyncIterator[Any]:
    timeout = httpx.Timeout(read, connect=5.0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(fal), base_url="http://fal", timeout=timeout) as http:
        options = {"metrics": Metrics(), "submit_timeout": 5.0, "submit_connect_retries": 0, **options}
        yield harness.fal_client(http, **options)


async def _submit(fal: FalClient) -> str:
    return (await fal.submit(TEXT_TO_VIDEO, {"prompt": "x"}, headers={}, query={})).upstream_id


async def test_the_pre_admission_check_refuses_while_open_and_takes_no_probe(harness: Harness) -> None:
    fal = ScriptedFal(*[(503, {"detail": "No runners"})] * FAILURES, (200, {"request_id": "up-1"}))
    async with _client(harness, fal) as client:
        client.check_submit_allowed()
        for _ in range(FAILURES):
            with pytest.raises(UpstreamRejected):
                await _submit(client)
        with pytest.raises(UpstreamCircuitOpen) as refused:
            client.check_submit_allowed()
        assert isinstance(refused.value, RequestNotSent), "the submit pipeline gives back what admission took"
        assert refused.value.retry_after == COOLDOWN
        with pytest.raises(UpstreamCircuitOpen):
            await _submit(client)
        assert fal.seen == FAILURES, "each submit fal answered was sent once; the refused one not at all"
        harness.clock.advance(COOLDOWN)
        client.check_submit_allowed()
        assert await _submit(client) == "up-1", "the check took no probe slot"


async def test_connect_failures_on_submit_are_retried_and_count_once_per_call(harness: Harness) -> None:
    fal, metrics = ScriptedFal(httpx.ConnectError), Metrics()
    async with _client(harness, fal, metrics=metrics, submit_connect_retries=2) as client:
        for _ in range(FAILURES - 1):
            with pytest.raises(RequestNotSent):
                await _submit(client)
        client.check_submit_allowed()
        assert fal.seen == 3 * (FAILURES - 1)
        retries = metrics.registry.get_sample_value(
            "gateway_upstream_retries_total", {"op": "submit", "reason": "not_sent"}
        )
        assert retries == 2 * (FAILURES - 1)
        with pytest.raises(RequestNotSent):
            await _submit(client)
        with pytest.raises(UpstreamCircuitOpen):
            client.check_submit_allowed()


BUSY, GONE = {"detail": "busy"}, {"detail": "Request not found"}


@pytest.mark.parametrize(
    ("op", "script", "read", "seen", "waits", "raised"),
    [
        ("cancel", [(503, BUSY), (502, "<html>nginx</html>"), (202, {"status": "OK"})], 30, 3, [0.25, 0.5], None),
        ("status", [(503, BUSY, {"Retry-After": "5"})], 8, 2, [5.0], UpstreamRejected),  # a 3rd would end past 8 s
        ("result", [(429, BUSY), (200, {"video": {"url": "https://x/v.mp4"}})], 30, 2, [0.25], None),
        ("status", [(404, GONE)], 30, 1, [], UpstreamRejected),
        ("status", [(401, {"detail": "Invalid key"})], 30, 1, [], UpstreamError),
        ("result", [(500, {"detail": "GPU fell over"})], 30, 1, [], None),  # the model's own error: a result
        ("cancel", [(400, {"status": "ALREADY_COMPLETED"})], 30, 1, [], None),
    ],
    ids=["backoff", "retry-after-within-read-timeout", "result-429", "404", "401", "result-500", "cancel-400"],
)
async def test_idempotent_calls_are_retried_after_failures_only(
    harness: Harness, op: str, script: list[Any], read: float, seen: int, waits: list[float], raised: Any
) -> None:
    fal = ScriptedFal(*script)
    async with _client(harness, fal, read=read) as client:
        call = getattr(client, op)(TEXT_TO_VIDEO, "up-1")
        if raised is None:
            await call
        else:
            with pytest.raises(raised):
                await call
    assert (fal.seen, harness.waits) == (seen, waits)


async def test_timeouts_count_and_open_the_circuit_once_per_call(harness: Harness) -> None:
    fal = ScriptedFal(httpx.ReadTimeout)
    async with _client(harness, fal) as client:
        for _ in range(FAILURES):
            with pytest.raises(UpstreamTimeout):
                await client.status(TEXT_TO_VIDEO, "up-1")
        with pytest.raises(UpstreamCircuitOpen):
            await client.status(TEXT_TO_VIDEO, "up-1")
        assert fal.seen == 3 * FAILURES, "three attempts a call; none once open"
        with pytest.raises(UpstreamTimeout):
            await client.result(TEXT_TO_VIDEO, "up-1")
    assert fal.seen == 3 * FAILURES + 3, "each operation has its own breaker"
