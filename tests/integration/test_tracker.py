"""The job tracker against real Redis and the simulator, driven by injected clocks: takeover after a replica dies,
stalled submits, transient upstream errors, and jobs lost upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import httpx
import pytest
from redis.asyncio import Redis

from service.clients import Clients, open_clients
from service.config import Settings
from service.container import build_deps
from service.domain.endpoints import TEXT_TO_VIDEO
from service.domain.jobs import Job, JobMode, JobState, Outcome
from service.http import in_process_transport
from service.jobs.store import DueSchedule, JobStore
from service.jobs.tracker import JobTracker
from service.metrics import Metrics
from service.schedule import Handover
from service.simulator.app import create_simulator_app
from service.simulator.faults import FaultRule
from service.simulator.state import SimulatorConfig, SimulatorState
from service.upstream.fal import FalClient
from service.upstream.selection import Upstream
from tests.support.redis_cluster import MODES, is_cluster
from tests.support.waiting import eventually

REDIS_MODES = MODES


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


REDIS_MODES = MODES


@dataclass
class Rig:
    clock: Clock
    sim_clock: Clock
    sim: SimulatorState
    store: JobStore
    due: DueSchedule
    fal: FalClient
    settings: Settings
    metrics: Metrics
    redis: Redis
    http: httpx.AsyncClient
    clients: Clients

    def tracker(self) -> JobTracker:
        """A fresh tracker wired as the app wires it (a replica of its own), on this rig's clock and upstream."""
        return build_deps(self.settings, self.clients, metrics=self.metrics, clock=self.clock).tracker

    async def recorded_job(self, rid: str, *, upstream_id: str | None = None) -> Job:
        """A job as the API records it: SUBMITTING until an upstream id is known, then IN_QUEUE and due now."""
        state = JobState.SUBMITTING if upstream_id is None else JobState.IN_QUEUE
        job = Job(
            request_id=rid,
            tenant_id="acme",
            endpoint_id=TEXT_TO_VIDEO.id,
            mode=JobMode.QUEUE,
            input={"prompt": "x"},
            created_at=self.clock(),
            state=state,
            upstream_id=upstream_id,
        )
        await self.store.create(job)
        await self.due.schedule(rid, int(self.clock() * 1000))
        return job

    async def submitted_job(self, rid: str = "00000000-0000-4000-8000-00000000000a") -> Job:
        """A job as the API leaves it after a successful upstream submit."""
        submitted = await self.fal.submit(TEXT_TO_VIDEO, {"prompt": "x"}, headers={}, query={})
        return await self.recorded_job(rid, upstream_id=submitted.upstream_id)


@pytest.fixture
async def rig(redis_client: Redis, redis_url: str) -> AsyncIterator[Rig]:
    sim_clock = Clock(0.0)
    sim = SimulatorState(SimulatorConfig(queue_seconds=1, processing_seconds=4, fal_key="k"), clock=sim_clock)
    metrics = Metrics()
    settings = Settings(
        redis_url=redis_url,
        redis_cluster=is_cluster(redis_url),
        tracker_lease_seconds=30,
        upstream_submit_timeout_seconds=60,
    )
    transport = in_process_transport(create_simulator_app(sim))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://sim",
        headers={"Authorization": "Key k"},
    ) as http:
        fal = FalClient(http, metrics=metrics, submit_timeout=5, submit_connect_retries=0)
        upstream = Upstream("http://sim", transport, None, transport, "http://sim")
        clients = replace(open_clients(settings, upstream, redis_client), fal=http)  # the simulator wants key "k"
        yield Rig(
            Clock(),
            sim_clock,
            sim,
            JobStore(redis_client, retention_seconds=3600),
            DueSchedule(redis_client, shards=settings.shards),  # 8 on the cluster
            fal,
            settings,
            metrics,
            redis_client,
            http,
            clients,
        )
        await clients.aclose()


async def _step_all(tracker: JobTracker) -> int:
    started = await tracker.claim_and_start()
    await tracker.drain()
    return started


async def test_tracker_follows_a_job_to_completion(rig: Rig) -> None:
    job = await rig.submitted_job()
    tracker = rig.tracker()
    assert await _step_all(tracker) == 1
    assert (await rig.store.get(job.request_id)).state is JobState.IN_QUEUE  # type: ignore[union-attr]
    rig.sim_clock.advance(2)
    rig.clock.advance(60)
    await _step_all(tracker)
    assert (await rig.store.get(job.request_id)).state is JobState.IN_PROGRESS  # type: ignore[union-attr]
    rig.sim_clock.advance(10)
    rig.clock.advance(60)
    await _step_all(tracker)
    final = await rig.store.get(job.request_id)
    assert final is not None
    assert final.outcome is Outcome.OK
    assert final.result["video"]["url"].endswith(".mp4")
    assert await rig.due.size() == 0


async def test_a_dead_replicas_claim_is_taken_over_after_the_lease(rig: Rig) -> None:
    job = await rig.submitted_job()
    rig.sim_clock.advance(100)  # done upstream
    # Replica A claims the job and dies before processing it.
    assert [c.member for c in await rig.due.claim(int(rig.clock() * 1000), lease_ms=30_000, limit=10)] == [
        job.request_id
    ]
    survivor = rig.tracker()
    rig.clock.advance(29)
    assert await _step_all(survivor) == 0, "the lease still holds"
    rig.clock.advance(2)
    assert await _step_all(survivor) == 1
    final = await rig.store.get(job.request_id)
    assert final is not None
    assert final.state is JobState.COMPLETED


async def test_a_stalled_submit_is_failed_not_resubmitted(rig: Rig) -> None:
    rid = "00000000-0000-4000-8000-00000000000b"
    await rig.recorded_job(rid)
    tracker = rig.tracker()
    await _step_all(tracker)
    assert (await rig.store.get(rid)).state is JobState.SUBMITTING  # type: ignore[union-attr]
    rig.clock.advance(91)  # submit timeout (60) + lease (30) have passed
    await _step_all(tracker)
    final = await rig.store.get(rid)
    assert final is not None
    assert final.outcome is Outcome.ERROR
    assert final.error_type == "upstream_submit_unknown"
    assert rig.sim.stats()["calls"]["submit"] == 0


async def test_transient_status_errors_are_retried_and_bounded_by_backoff(rig: Rig) -> None:
    job = await rig.submitted_job()
    rig.sim.add_fault(FaultRule(op="status", kind="http_error", status=503, times=3))
    tracker = rig.tracker()
    for _ in range(3):
        await _step_all(tracker)
        rig.clock.advance(60)
    assert (await rig.store.get(job.request_id)).state is not JobState.COMPLETED  # type: ignore[union-attr]
    rig.sim_clock.advance(100)
    await _step_all(tracker)
    final = await rig.store.get(job.request_id)
    assert final is not None
    assert final.outcome is Outcome.OK


async def test_a_job_unknown_upstream_fails_with_a_clear_error(rig: Rig) -> None:
    job = await rig.submitted_job()
    rig.sim.add_fault(
        FaultRule(
            op="status", kind="http_error", status=404, body={"detail": "Request not found", "error_type": "not_found"}
        )
    )
    await _step_all(rig.tracker())
    final = await rig.store.get(job.request_id)
    assert final is not None
    assert final.outcome is Outcome.ERROR
    assert final.error_type == "upstream_request_lost"


async def _next_poll_in(rig: Rig, rid: str) -> float:
    score = await rig.due.due_at(rid)
    assert score is not None
    return score / 1000 - rig.clock()


async def test_a_job_in_fals_queue_backs_off_further_than_one_being_generated(rig: Rig) -> None:
    rig.sim.configure(queue_seconds=10_000, processing_seconds=10_000)
    job = await rig.submitted_job()
    tracker = rig.tracker()
    waits = []
    for _ in range(12):  # 0.5 s x 1.5^n reaches both caps within a dozen polls
        await _step_all(tracker)
        waits.append(await _next_poll_in(rig, job.request_id))
        rig.clock.advance(waits[-1])
    assert max(waits) == pytest.approx(rig.settings.tracker_poll_queued_max_seconds, abs=0.01)
    assert rig.settings.tracker_poll_queued_max_seconds > rig.settings.tracker_poll_max_seconds

    rig.sim_clock.advance(10_000)  # now IN_PROGRESS at fal: the backoff restarts and is capped lower
    waits = []
    for _ in range(12):
        await _step_all(tracker)
        waits.append(await _next_poll_in(rig, job.request_id))
        rig.clock.advance(waits[-1])
    stored = await rig.store.get(job.request_id)
    assert stored is not None
    assert stored.state is JobState.IN_PROGRESS
    assert waits[0] == pytest.approx(rig.settings.tracker_poll_initial_seconds, abs=0.01)
    assert max(waits) == pytest.approx(rig.settings.tracker_poll_max_seconds, abs=0.01)


def _sample(rig: Rig, name: str, labels: dict[str, str] | None = None) -> float:
    return rig.metrics.registry.get_sample_value(name, labels or {}) or 0.0


async def test_the_tracker_observes_how_late_it_claims_each_job(rig: Rig) -> None:
    await rig.submitted_job()  # due now on the rig's clock
    rig.clock.advance(2)
    assert await _step_all(rig.tracker()) == 1
    assert _sample(rig, "gateway_tracker_lag_seconds_count") == 1
    assert _sample(rig, "gateway_tracker_lag_seconds_sum") == pytest.approx(2.0, abs=0.01)


async def test_a_stopping_tracker_hands_its_stuck_step_back_and_another_replica_takes_it_at_once(rig: Rig) -> None:
    job = await rig.submitted_job()
    rig.sim_clock.advance(100)  # done upstream; the leaving replica's status call will hang
    rig.sim.add_fault(FaultRule(op="status", kind="slow", delay_seconds=60, times=1))
    grace = rig.settings.model_copy(update={"tracker_shutdown_grace_seconds": 0.1})
    leaving = build_deps(grace, rig.clients, metrics=rig.metrics, clock=rig.clock).tracker
    stop = asyncio.Event()
    running = asyncio.create_task(leaving.run(stop))

    async def stuck_in_fals_status_call() -> bool:
        return bool(rig.sim.stats()["calls"].get("status"))

    await eventually(stuck_in_fals_status_call)
    assert await rig.due.due_at(job.request_id) == (rig.clock() + 30) * 1000, "leased for 30 s"
    stop.set()
    await running
    assert await leaving.hand_back() == Handover(finished=0, handed_back=1, not_held=0)
    assert await rig.due.due_at(job.request_id) == rig.clock() * 1000

    assert await _step_all(rig.tracker()) == 1, "taken at once, without the 30 s lease running out"
    final = await rig.store.get(job.request_id)
    assert final is not None
    assert final.outcome is Outcome.OK
    completed = {"endpoint": TEXT_TO_VIDEO.id, "outcome": "ok"}
    assert _sample(rig, "gateway_jobs_completed_total", completed) == 1, "completed once"
    assert rig.sim.stats()["requests"][job.upstream_id]["result_calls"] == 1
