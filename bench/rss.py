"""Gateway memory with many jobs in flight: the simulator keeps every job running for minutes while the bench submits
through the gateway, and the gateway's RSS is read at each level."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from bench.falapi import UNSEEDED, SimControl, Target, body_text, drain, targets, tracker_backlog
from bench.processes import Stack
from bench.procfs import tree_rss_mb

CONCURRENCY = 32
SETTLE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class RssLevel:
    jobs_in_flight: int
    target: int
    submit_seconds: float
    submit_rps: float
    failed_submits: int
    gateway_rss_mb: float
    gateway_rss_per_process_mb: dict[int, float]
    simulator_rss_mb: float
    redis_used_mb: float
    tracker_backlog: int


@dataclass
class RssResult:
    processing_seconds: float
    gateway_rss_after_load_mb: float  # the high-water mark the earlier phases left, before the restart
    baseline_gateway_rss_mb: float  # a fresh gateway with nothing in flight
    levels: list[RssLevel] = field(default_factory=list)
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def redis_used_mb(stack: Stack) -> float:
    client = stack.redis()
    try:
        info: dict[str, Any] = client.info("memory")
        return round(int(info["used_memory"]) / 2**20, 1)
    finally:
        client.close()


def run_rss(
    stack: Stack,
    levels: list[int],
    *,
    processing_seconds: float = 600.0,
    level_timeout_seconds: float = 900.0,
) -> RssResult:
    _, gateway = targets(stack)
    sim = SimControl(stack.sim_url)
    try:
        drain(stack)
        sim.reset(queue_seconds=0.0, processing_seconds=processing_seconds)
    finally:
        sim.close()
    after_load = tree_rss_mb(stack.gateway.pid)[0]
    stack.restart_gateway()  # a fresh process, so the earlier phases' high-water mark does not hide the growth
    time.sleep(SETTLE_SECONDS)
    result = RssResult(processing_seconds, after_load, tree_rss_mb(stack.gateway.pid)[0])
    submitted = 0
    for level in sorted(levels):
        start = time.monotonic()
        accepted, failed = asyncio.run(_submit(gateway, level - submitted, level_timeout_seconds))
        seconds = time.monotonic() - start
        submitted += accepted
        time.sleep(SETTLE_SECONDS)
        total, per_process = tree_rss_mb(stack.gateway.pid)
        result.levels.append(
            RssLevel(
                jobs_in_flight=submitted,
                target=level,
                submit_seconds=round(seconds, 1),
                submit_rps=round(accepted / seconds, 1) if seconds else 0.0,
                failed_submits=failed,
                gateway_rss_mb=total,
                gateway_rss_per_process_mb=per_process,
                simulator_rss_mb=tree_rss_mb(stack.simulator.pid)[0],
                redis_used_mb=redis_used_mb(stack),
                tracker_backlog=tracker_backlog(stack),
            )
        )
        print(f"  {submitted:>6} jobs in flight: gateway RSS {total:.1f} MB ({accepted / seconds:.0f} submits/s)")
        if submitted < level:
            result.note = f"stopped at {submitted} jobs: submitting {level} took longer than {level_timeout_seconds}s"
            break
    return result


async def _submit(target: Target, count: int, seconds: float) -> tuple[int, int]:
    """Submit ``count`` jobs with bounded concurrency; returns (accepted, failed). Stops after ``seconds`` or once as
    many submits have failed as were asked for."""
    deadline = time.monotonic() + seconds
    body = body_text(UNSEEDED).encode()
    headers = {"Content-Type": "application/json"}
    state = {"left": count, "ok": 0, "failed": 0}
    async with target.async_client(connections=CONCURRENCY) as client:

        async def worker() -> None:
            while state["left"] > 0 and state["failed"] < count and time.monotonic() < deadline:
                state["left"] -= 1
                try:
                    response = await client.post(target.submit_path, content=body, headers=headers)
                except httpx.HTTPError:
                    response = None
                if response is not None and response.status_code == 200:
                    state["ok"] += 1
                else:
                    state["failed"] += 1
                    state["left"] += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return state["ok"], state["failed"]
