"""Two replicas, one of which shuts down (its drain begun, which is what the server does first on SIGTERM): ``/run``
waits on it hand their clients over with a 429 both official clients retry, the retry on the replica that stays
answers with the same job (one submit, one charge), and its status streams follow their jobs for a grace period,
then end with a reconnect hint (docs/protocol.md §15)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from litestar import Litestar
from redis.asyncio import Redis

from service.app import create_app
from service.drain import Drain
from service.server import GRACEFUL_SHUTDOWN_SECONDS, DrainingServer, server_config
from service.simulator.state import SimulatorState
from tests.support.admin import key_auth, tenant_key
from tests.support.clocks import ManualClock
from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.gateway import fast_settings, fast_simulator, local, simulator_transport
from tests.support.loopback import free_port
from tests.support.replicas import StartReplicas
from tests.support.waiting import eventually


@dataclass
class Pair:
    leaving: httpx.AsyncClient
    staying: httpx.AsyncClient
    leaving_app: Litestar
    sim: SimulatorState
    sim_clock: ManualClock
    auth: dict[str, str]

    def begin_shutdown(self) -> float:
        """Begin the leaving replica's drain; returns a time just before it began."""
        drain = self.leaving_app.state.drain
        assert isinstance(drain, Drain)
        before = time.monotonic()
        drain.begin()
        return before

    def submits(self) -> int:
        return int(self.sim.stats()["calls"].get("submit", 0))

    async def submitted(self, count: int) -> None:
        async def reached() -> bool:
            return self.submits() == count

        await eventually(reached)


async def _pair(replicas: StartReplicas, **overrides: Any) -> Pair:
    """The simulator's jobs finish only when a test moves its clock."""
    sim_clock = ManualClock(0.0)
    group = await replicas(sim=fast_simulator(clock=sim_clock), **overrides)
    leaving, staying = group.clients
    auth = key_auth(await tenant_key(staying))
    return Pair(leaving, staying, group.apps[0], group.sim, sim_clock, auth)


async def test_a_run_waiting_on_a_replica_that_shuts_down_is_handed_over_to_its_retry(replicas: StartReplicas) -> None:
    pair = await _pair(replicas)
    waiting = asyncio.create_task(pair.leaving.post(f"/run/{T2V}", json=T2V_INPUT, headers=pair.auth))
    await pair.submitted(1)
    pair.begin_shutdown()
    answer = await waiting
    assert answer.status_code == 429, answer.text
    assert answer.json()["error_type"] == "replica_shutting_down"
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["x-fal-error-type"] == "replica_shutting_down"
    request_id = answer.headers["x-fal-request-id"]

    pair.sim_clock.advance(10)  # the job finishes upstream; the staying replica's tracker follows it
    retried = await pair.staying.post(f"/run/{T2V}", json=T2V_INPUT, headers=pair.auth)
    assert retried.status_code == 200, retried.text
    assert retried.headers["x-fal-request-id"] == request_id, "the retry is answered with the same job"
    assert retried.json()["video"]["url"]
    assert pair.submits() == 1, "submitted once"
    status = await pair.staying.get(f"/queue/fal-ai/bytedance/requests/{request_id}/status", headers=pair.auth)
    assert status.json()["status"] == "COMPLETED"

    another = asyncio.create_task(pair.staying.post(f"/run/{T2V}", json=T2V_INPUT, headers=pair.auth))
    await pair.submitted(2)
    pair.sim_clock.advance(10)
    fresh = await another
    assert fresh.status_code == 200, fresh.text
    assert fresh.headers["x-fal-request-id"] != request_id, "a handover is taken by one retry only"


async def test_a_run_that_reaches_a_replica_already_shutting_down_is_sent_elsewhere_unsubmitted(
    replicas: StartReplicas,
) -> None:
    pair = await _pair(replicas)
    pair.begin_shutdown()
    answer = await pair.leaving.post(f"/run/{T2V}", json=T2V_INPUT, headers=pair.auth)
    assert answer.status_code == 429
    assert answer.json()["error_type"] == "replica_shutting_down"
    assert pair.submits() == 0
    invalid = await pair.leaving.post(f"/run/{T2V}", json={"prompt": "x", "duration": "99"}, headers=pair.auth)
    assert invalid.status_code == 422, "validation still answers first"


def _sse(body: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The data events (each parsed as JSON, as fal's JS client does) and every other non-empty line."""
    events, others = [], []
    for line in body.splitlines():
        if line.startswith("data:"):
            events.append(json.loads(line.removeprefix("data:").strip()))
        elif line:
            others.append(line)
    return events, others


async def test_a_status_stream_on_a_replica_that_shuts_down_ends_after_its_grace_with_a_reconnect_hint(
    replicas: StartReplicas,
) -> None:
    pair = await _pair(replicas, shutdown_stream_grace_seconds=1.0, sse_keepalive_seconds=0.1)
    submitted = (await pair.staying.post(f"/queue/{T2V}", json=T2V_INPUT, headers=pair.auth)).json()
    stream = asyncio.create_task(pair.leaving.get(local(submitted["status_url"]) + "/stream", headers=pair.auth))
    began = pair.begin_shutdown()
    response = await stream
    assert time.monotonic() - began >= 1.0, "the stream kept following its job for the grace period"
    assert response.status_code == 200
    events, others = _sse(response.text)
    assert events, "the job's status came first"
    assert all(event["status"] != "COMPLETED" for event in events)
    assert ": keep-alive" in others, "keep-alives are comments: no empty data event for JS to fail to parse"
    assert others[-2:] == [": this gateway replica is shutting down; reconnect", "retry: 1000"]
    status = await pair.staying.get(local(submitted["status_url"]), headers=pair.auth)
    assert status.json()["status"] != "COMPLETED", "the job goes on, followed by the replica that stays"


async def test_a_status_stream_whose_job_completes_during_the_grace_ends_with_completed(
    replicas: StartReplicas,
) -> None:
    pair = await _pair(replicas, shutdown_stream_grace_seconds=10)
    submitted = (await pair.staying.post(f"/queue/{T2V}", json=T2V_INPUT, headers=pair.auth)).json()
    stream = asyncio.create_task(pair.leaving.get(local(submitted["status_url"]) + "/stream", headers=pair.auth))
    began = pair.begin_shutdown()
    pair.sim_clock.advance(10)
    response = await stream
    assert time.monotonic() - began < 10, "ended by the completion, not by the grace"
    events, others = _sse(response.text)
    assert events[-1]["status"] == "COMPLETED"
    assert not [line for line in others if "shutting down" in line]


async def test_under_uvicorn_the_drain_begins_before_the_graceful_wait_for_open_connections(
    redis_client: Redis, redis_url: str
) -> None:
    """uvicorn runs the lifespan's shutdown only once every connection has closed: without the drain announced
    first, a waiting ``/run`` would hold the shutdown for the whole graceful window and then be cut."""
    sim_clock = ManualClock(0.0)
    sim = fast_simulator(clock=sim_clock)
    settings = fast_settings(redis_url, host="127.0.0.1", port=free_port())
    app = create_app(settings, redis=redis_client, upstream_transport=simulator_transport(sim))
    server = DrainingServer(server_config(app, settings), app)
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await eventually(started)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=30) as http:
        auth = key_auth(await tenant_key(http))
        waiting = asyncio.create_task(http.post(f"/run/{T2V}", json=T2V_INPUT, headers=auth))

        async def submitted() -> bool:
            return bool(sim.stats()["calls"].get("submit"))

        await eventually(submitted)
        stopped_at = time.monotonic()
        server.should_exit = True  # what uvicorn's SIGTERM handler does
        answer = await waiting
    assert answer.status_code == 429
    assert answer.json()["error_type"] == "replica_shutting_down"
    await serving
    assert time.monotonic() - stopped_at < GRACEFUL_SHUTDOWN_SECONDS / 2, "not held for the graceful window"
