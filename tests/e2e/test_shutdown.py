"""SIGTERM with real processes: the simulator and two gateways, A and B, on one Redis with leases of 60 s. A holds
every job's tracker lease (its steps hang in slow fal status calls), or a webhook delivery's lease (its attempt hangs
at the receiver), when it gets SIGTERM. A hands that work back, and B finishes it within seconds, not after the
lease: each job submitted once, completed once and charged once. A's in-flight HTTP requests are answered: a waiting
``/run`` is handed over to its retry (which B answers with the same job), a status stream ends after COMPLETED."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from service import keys
from tests.support.e2e import E2E_ADMIN_TOKEN, ROOT, Processes
from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.loopback import free_port, wait_ready
from tests.support.receiver import Receiver
from tests.support.redis import flush
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e
LEASE_SECONDS = 60
HANDOVER_BOUND_SECONDS = 10  # "at once": far below the lease, generous for slow machines
JOBS = 4
ADMIN = {"Authorization": f"Bearer {E2E_ADMIN_TOKEN}"}


@dataclass
class Replica:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logged(self, event: str) -> list[dict[str, Any]]:
        """The JSON log lines of ``event``."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == event:
                found.append(entry)
        return found


@dataclass
class Rig:
    """The simulator (from ``tests.support.e2e``) and any number of plain-HTTP gateways on the suite's Redis."""

    procs: Processes
    replicas: list[Replica] = field(default_factory=list)

    def start(self, name: str) -> Replica:
        port = free_port()
        env = {k: v for k, v in self.procs.gateway_env().items() if not k.startswith("GATEWAY_TLS_")}
        env |= {
            "GATEWAY_PORT": str(port),
            "GATEWAY_TRACKER_LEASE_SECONDS": str(LEASE_SECONDS),
            "GATEWAY_WEBHOOK_LEASE_SECONDS": str(LEASE_SECONDS),
            "GATEWAY_TRACKER_SHUTDOWN_GRACE_SECONDS": "1",
            "GATEWAY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        }
        log = self.procs.tmp / f"gateway-{name}-{port}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "serve"],
            cwd=ROOT,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        replica = Replica(name, port, proc, log)
        self.replicas.append(replica)
        wait_ready(f"{replica.url}/healthz", alive=lambda: proc.poll() is None)
        return replica

    def stop_all(self) -> None:
        for replica in self.replicas:
            if replica.proc.poll() is None:
                replica.proc.send_signal(signal.SIGTERM)
        for replica in self.replicas:
            try:
                replica.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                replica.proc.kill()
                replica.proc.wait()
        self.replicas.clear()

    def leased(self) -> int:
        """How many tracker or webhook entries are held under a lease taken in the last 20 s."""
        horizon = int(time.time() * 1000) + (LEASE_SECONDS - 20) * 1000
        with redis.Redis.from_url(self.procs.redis_url) as client:
            return sum(int(client.zcount(key, horizon, "+inf")) for key in (keys.tracker_due(), keys.webhook_due()))


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Processes]:
    tmp = tmp_path_factory.mktemp("e2e-shutdown")
    procs = Processes(tmp=tmp, ca=tmp / "none", redis_url=redis_url, sim_port=free_port(), gw_port=0)
    try:
        procs.start_simulator()
        yield procs
    finally:
        if procs.simulator is not None:  # its slow status calls still sleep: a graceful stop would wait for them
            procs.simulator.kill()
            procs.simulator.wait()
        flush(redis_url)


@pytest.fixture
def rig(simulator: Processes) -> Iterator[Rig]:
    flush(simulator.redis_url)  # this test's gateways see only this test's work, the simulator only its calls
    httpx.post(f"{simulator.sim_url}/_sim/reset", timeout=5).raise_for_status()
    started = Rig(simulator)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def _tenant(http: httpx.AsyncClient, replica: Replica, tenant: str) -> dict[str, str]:
    created = await http.post(f"{replica.url}/admin/tenants", json={"id": tenant, "name": tenant}, headers=ADMIN)
    assert created.status_code == 201, created.text
    issued = await http.post(f"{replica.url}/admin/tenants/{tenant}/keys", headers=ADMIN)
    assert issued.status_code == 201, issued.text
    return {"Authorization": f"Key {issued.json()['key']}"}


async def _submit(http: httpx.AsyncClient, replica: Replica, auth: dict[str, str], prompt: str, **params: str) -> str:
    response = await http.post(
        f"{replica.url}/queue/{T2V}", json={**T2V_INPUT, "prompt": prompt}, params=params, headers=auth
    )
    assert response.status_code == 200, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def _status_path(request_id: str) -> str:
    return f"/queue/fal-ai/bytedance/requests/{request_id}/status"


async def _status_stream(
    http: httpx.AsyncClient, replica: Replica, request_id: str, auth: dict[str, str], opened: asyncio.Event
) -> list[str]:
    """Every line of the stream until the server ends it; raises if the connection is cut instead."""
    lines: list[str] = []
    async with http.stream("GET", f"{replica.url}{_status_path(request_id)}/stream", headers=auth) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            lines.append(line)
            if line.startswith("data:"):
                opened.set()
    return lines


def _completed_total(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gateway_jobs_completed_total"
    )


async def _leased(rig: Rig, count: int) -> None:
    async def held() -> bool:
        return await asyncio.to_thread(rig.leased) == count

    await eventually(held, timeout=15)


def _sigterm(replica: Replica) -> float:
    replica.proc.send_signal(signal.SIGTERM)
    return time.monotonic()


async def test_sigterm_hands_leased_jobs_and_a_waiting_run_over_to_the_other_replica_at_once(
    rig: Rig, http: httpx.AsyncClient
) -> None:
    a = await asyncio.to_thread(rig.start, "a")
    auth = await _tenant(http, a, "leaving")
    tag = uuid.uuid4().hex[:8]
    rig.procs.sim_fault(op="status", kind="slow", delay_seconds=45, times=JOBS + 1)  # every job's first poll hangs
    ids = [await _submit(http, a, auth, f"queued {n} {tag}") for n in range(JOBS)]
    run_body = {**T2V_INPUT, "prompt": f"run {tag}"}
    run = asyncio.create_task(http.post(f"{a.url}/run/{T2V}", json=run_body, headers=auth))
    await _leased(rig, JOBS + 1)  # A's tracker holds every job, stuck in fal's status call
    b = await asyncio.to_thread(rig.start, "b")
    opened = asyncio.Event()
    stream = asyncio.create_task(_status_stream(http, a, ids[0], auth, opened))
    await asyncio.wait_for(opened.wait(), 10)
    assert rig.leased() == JOBS + 1, "B took none of A's leases"

    signalled = _sigterm(a)
    handed = await run
    assert handed.status_code == 429, handed.text
    assert handed.json()["error_type"] == "replica_shutting_down"
    assert handed.headers["retry-after"] == "1"
    run_id = handed.headers["x-fal-request-id"]
    retried = await http.post(f"{b.url}/run/{T2V}", json=run_body, headers=auth)  # what fal's clients do on a 429
    assert retried.status_code == 200, retried.text
    assert retried.headers["x-fal-request-id"] == run_id, "B answers the retry with the job A handed over"

    async def all_completed() -> bool:
        answers = [await http.get(f"{b.url}{_status_path(rid)}", headers=auth) for rid in ids]
        return all(answer.json()["status"] == "COMPLETED" for answer in answers)

    await eventually(all_completed, timeout=HANDOVER_BOUND_SECONDS)
    assert time.monotonic() - signalled < HANDOVER_BOUND_SECONDS < LEASE_SECONDS, "handed over, not left leased"
    lines = await asyncio.wait_for(stream, HANDOVER_BOUND_SECONDS)
    events = [json.loads(line.removeprefix("data:")) for line in lines if line.startswith("data:")]
    assert events[-1]["status"] == "COMPLETED", "A's stream followed the job to its end, completed by B"
    assert await asyncio.to_thread(a.proc.wait, 20) in {0, -signal.SIGTERM}

    [handover] = a.logged("shutdown_handover")
    assert handover["tracker_handed_back"] == JOBS + 1
    assert handover["tracker_finished"] == 0
    upstream = [job for job in rig.procs.sim_stats()["requests"].values() if tag in job["input"]["prompt"]]
    prompts = sorted(job["input"]["prompt"] for job in upstream)
    assert prompts == sorted([f"queued {n} {tag}" for n in range(JOBS)] + [f"run {tag}"]), "each submitted once"
    assert all(job["result_calls"] == 1 for job in upstream)
    metrics = await http.get(f"{b.url}/metrics")
    assert _completed_total(metrics.text) == JOBS + 1, "B completed every job, once"
    usage = (await http.get(f"{b.url}/admin/tenants/leaving/usage", headers=ADMIN)).json()
    assert usage["reserved_micros"] == 0
    charges = (await http.get(f"{b.url}/admin/tenants/leaving/charges", headers=ADMIN)).json()["charges"]
    assert len(charges) == JOBS + 1, "charged once each"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


async def test_sigterm_hands_a_webhook_delivery_in_flight_over_to_the_other_replica_at_once(
    rig: Rig, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    a = await asyncio.to_thread(rig.start, "a")
    auth = await _tenant(http, a, "hooks")
    receiver.hold["/slow"] = 1  # A's attempt hangs at the receiver, holding the delivery's lease
    request_id = await _submit(http, a, auth, "a webhook", fal_webhook=receiver.url("/slow"))

    async def attempted() -> bool:
        return bool(receiver.at("/slow"))

    await eventually(attempted, timeout=15)
    await _leased(rig, 1)
    await asyncio.to_thread(rig.start, "b")
    signalled = _sigterm(a)

    async def delivered() -> dict[str, Any] | None:
        found = await http.get(
            f"{rig.replicas[1].url}/admin/webhooks/deliveries", params={"request_id": request_id}, headers=ADMIN
        )
        deliveries = found.json()["deliveries"]
        return deliveries[0] if deliveries and deliveries[0]["state"] == "delivered" else None

    delivery = await eventually(delivered, timeout=HANDOVER_BOUND_SECONDS, interval=0.05)
    assert time.monotonic() - signalled < HANDOVER_BOUND_SECONDS < LEASE_SECONDS, "handed over, not left leased"
    attempts = receiver.at("/slow")
    assert len(attempts) == 2, "A's attempt, cut short at the shutdown, and B's"
    assert {attempt.headers["webhook-id"] for attempt in attempts} == {delivery["id"]}, "receivers can dedupe"
    assert await asyncio.to_thread(a.proc.wait, 20) in {0, -signal.SIGTERM}
    [handover] = a.logged("shutdown_handover")
    assert (handover["webhooks_handed_back"], handover["webhooks_finished"]) == (1, 0)
