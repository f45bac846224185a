"""Upstream calls per job under a polling storm: clients poll the gateway as hard as they can while a handful of jobs
run, and the simulator counts how many status calls the gateway made to it for them."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from bench.falapi import UNSEEDED, SimControl, drain, targets
from bench.processes import Stack
from bench.wrk import WrkRequest, run_wrk

CHUNK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class StormResult:
    jobs: int
    connections: int
    queue_seconds: float
    processing_seconds: float
    all_completed: bool
    storm_seconds: float
    client_polls: int
    client_polls_per_job: float
    client_poll_rps: float
    non_2xx: int
    socket_errors: int
    upstream_status_calls: int
    upstream_status_calls_per_job: float
    upstream_status_calls_max_job: int
    upstream_result_calls_per_job: float
    upstream_calls_total: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_storm(
    stack: Stack,
    wrk: str,
    *,
    jobs: int = 20,
    connections: int = 64,
    queue_seconds: float = 1.0,
    processing_seconds: float = 3.0,
    bound_seconds: float = 60.0,
) -> StormResult:
    _, gateway = targets(stack)
    sim = SimControl(stack.sim_url)
    try:
        drain(stack)
        sim.reset(queue_seconds=queue_seconds, processing_seconds=processing_seconds)
        with gateway.client() as client:
            ids = [gateway.submit(client, UNSEEDED).json()["request_id"] for _ in range(jobs)]
            request = WrkRequest("GET", tuple(gateway.status_path(i) for i in ids), gateway.auth)
            polls = non_2xx = socket_errors = 0
            pending = list(ids)
            start = time.monotonic()
            while pending and time.monotonic() - start < bound_seconds:
                run = run_wrk(wrk, gateway.base_url, request, connections=connections, seconds=CHUNK_SECONDS, warmup=0)
                polls += run.requests + len(pending)  # the check below polls too
                non_2xx += run.non_2xx
                socket_errors += run.socket_errors
                pending = gateway.still_running(client, pending)
            storm_seconds = time.monotonic() - start
        drain(stack)  # the tracker's last calls (the result fetch) for the jobs
        stats = sim.stats()
    finally:
        sim.close()
    per_job = [stats["requests"][rid] for rid in stats["requests"]]  # after the reset: exactly these jobs
    status_calls = [int(job["status_calls"]) for job in per_job]
    result_calls = sum(int(job["result_calls"]) for job in per_job)
    return StormResult(
        jobs=jobs,
        connections=connections,
        queue_seconds=queue_seconds,
        processing_seconds=processing_seconds,
        all_completed=not pending,
        storm_seconds=round(storm_seconds, 2),
        client_polls=polls,
        client_polls_per_job=round(polls / jobs, 1),
        client_poll_rps=round(polls / storm_seconds, 1) if storm_seconds else 0.0,
        non_2xx=non_2xx,
        socket_errors=socket_errors,
        upstream_status_calls=sum(status_calls),
        upstream_status_calls_per_job=round(sum(status_calls) / jobs, 2),
        upstream_status_calls_max_job=max(status_calls, default=0),
        upstream_result_calls_per_job=round(result_calls / jobs, 2),
        upstream_calls_total={k: int(v) for k, v in stats["calls"].items()},
    )
