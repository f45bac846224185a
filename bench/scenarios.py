"""The side-by-side matrix: each scenario run with wrk directly on the simulator and then through the gateway, with
the same parameters, at each connection count."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.falapi import SEEDED, UNSEEDED, SimControl, Target, body_text, drain, targets
from bench.processes import Stack
from bench.wrk import WrkFailed, WrkRequest, WrkResult, run_wrk

MAX_REVIVALS = 3


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    note: str  # what the two sides do, when it differs
    creates_jobs: bool  # the simulator is reset before each run and the gateway's tracker drained after it
    build: Callable[[Target, httpx.Client], WrkRequest]


@dataclass(frozen=True, slots=True)
class Cell:
    scenario: str
    title: str
    connections: int
    direct: WrkResult
    gateway: WrkResult
    drain_s: float | None  # how long the gateway's tracker took to finish the jobs the run created
    redis_per_request: dict[str, float] = field(default_factory=dict)  # gateway side: "total" and the top commands

    @property
    def ratio(self) -> float:
        return self.gateway.rps / self.direct.rps if self.direct.rps else 0.0

    @property
    def added_p50_ms(self) -> float:
        return self.gateway.p50_ms - self.direct.p50_ms

    @property
    def flags(self) -> str:
        parts = [
            f"{side} {count} {what}"
            for side, result in (("direct", self.direct), ("gateway", self.gateway))
            for count, what in ((result.non_2xx, "non-2xx"), (result.socket_errors, "socket errors"))
            if count
        ]
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "title": self.title,
            "connections": self.connections,
            "direct": self.direct.to_json(),
            "gateway": self.gateway.to_json(),
            "ratio": round(self.ratio, 4),
            "added_p50_ms": round(self.added_p50_ms, 3),
            "drain_s": self.drain_s,
            "redis_commands_per_request": self.redis_per_request,
            "flags": self.flags,
        }


def _status(target: Target, client: httpx.Client) -> WrkRequest:
    request_id = target.completed_job(client, UNSEEDED)
    return WrkRequest("GET", (target.status_path(request_id),), target.auth)


def _result(target: Target, client: httpx.Client) -> WrkRequest:
    request_id = target.completed_job(client, UNSEEDED)
    return WrkRequest("GET", (target.result_path(request_id),), target.auth)


def _submit(target: Target, _client: httpx.Client) -> WrkRequest:
    return WrkRequest("POST", (target.submit_path,), target.auth, body_text(UNSEEDED))


def _cache(target: Target, client: httpx.Client) -> WrkRequest:
    if target.name == "gateway":
        target.completed_job(client, SEEDED)  # fills the cache; later identical requests are hits
        answer = target.submit(client, SEEDED).headers.get("x-gateway-cache")
        if answer != "hit":
            print(f"bench: warning: the primed seeded request was answered x-gateway-cache={answer!r}", file=sys.stderr)
    return WrkRequest("POST", (target.submit_path,), target.auth, body_text(SEEDED))


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario("status", "status polls", "GET .../requests/{id}/status of a completed job", False, _status),
        Scenario("submit", "submits", "POST text-to-video without a seed (never cached)", True, _submit),
        Scenario("result", "results", "GET .../requests/{id} of a completed job", False, _result),
        Scenario(
            "cache",
            "cache hits",
            "the same seeded body again and again; gateway: cache hits; direct: plain submits (fal has no cache)",
            True,
            _cache,
        ),
    )
}


def run_matrix(stack: Stack, wrk: str, keys: list[str], connections: list[int], seconds: float) -> list[Cell]:
    direct, gateway = targets(stack)
    sim = SimControl(stack.sim_url)
    cells: list[Cell] = []
    try:
        for key in keys:
            scenario = SCENARIOS[key]
            drain(stack)
            sim.reset()
            with direct.client() as direct_client, gateway.client() as gateway_client:
                requests = scenario.build(direct, direct_client), scenario.build(gateway, gateway_client)
            for count in connections:
                for _ in range(MAX_REVIVALS):
                    try:
                        sides = (direct, gateway)
                        cell = _cell(
                            stack, wrk, sim, scenario, sides=sides, requests=requests, count=count, seconds=seconds
                        )
                    except WrkFailed:
                        if not stack.revive_gateway(f"{scenario.title} c={count}"):
                            stack.ensure_alive()  # a dead simulator explains it better
                            raise
                        continue
                    if not stack.revive_gateway(f"{scenario.title} c={count}"):  # else: measured a dying gateway
                        break
                else:
                    raise RuntimeError(f"{scenario.title} c={count}: the gateway was ended {MAX_REVIVALS} times")
                cells.append(cell)
                print(progress_line(cell), flush=True)
    finally:
        sim.close()
    return cells


def _cell(
    stack: Stack,
    wrk: str,
    sim: SimControl,
    scenario: Scenario,
    *,
    sides: tuple[Target, Target],
    requests: tuple[WrkRequest, WrkRequest],
    count: int,
    seconds: float,
) -> Cell:
    results: list[WrkResult] = []
    for target, request in zip(sides, requests, strict=True):
        if scenario.creates_jobs:
            sim.reset()  # both sides start from an empty simulator
        before = redis_calls(stack)
        results.append(run_wrk(wrk, target.base_url, request, connections=count, seconds=seconds))
        calls = redis_calls(stack) - before
    per_request = per_request_calls(calls, results[-1])  # of the gateway's run, the last
    drain_s = drain(stack) if scenario.creates_jobs else None
    return Cell(scenario.key, scenario.title, count, results[0], results[1], drain_s, per_request)


def redis_calls(stack: Stack) -> Counter[str]:
    """Redis's own count of the commands it ran, by command (commands run inside Lua scripts included)."""
    client = stack.redis()
    try:
        stats: dict[str, Any] = client.info("commandstats")
    finally:
        client.close()
    return Counter({name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()})


def per_request_calls(delta: Counter[str], result: WrkResult, top: int = 6) -> dict[str, float]:
    """Commands per request during a run (warm-up included), in all and for the most frequent ones."""
    delta.pop("info", None)  # the bench's own snapshots
    requests = result.requests + result.warmup_requests
    if not requests:
        return {}
    counts = {"total": sum(delta.values()), **dict(delta.most_common(top))}
    return {name: round(calls / requests, 2) for name, calls in counts.items()}


def progress_line(cell: Cell) -> str:
    line = (
        f"  {cell.title:<12} c={cell.connections:<4} direct {cell.direct.rps:>8.0f} req/s  "
        f"gateway {cell.gateway.rps:>8.0f} req/s  ratio {cell.ratio:.2f}"
    )
    if cell.drain_s:
        line += f"  (tracker drained in {cell.drain_s:.1f}s)"
    return line + (f"  [{cell.flags}]" if cell.flags else "")
