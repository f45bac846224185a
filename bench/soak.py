"""``python -m bench.soak --minutes 10``: a bounded soak of the gateway under a steady mixed load.

Starts the same processes as ``python -m bench`` (the simulator with 1 s queue and 1 s processing, so jobs
complete), drives submits, status polls of the submitted jobs and result fetches of completed ones at a fixed rate
for the given minutes, samples the gateway's RSS every 10 s, and writes soak.json with the samples, first/last/max
RSS, the slope over the second half and a verdict: "flat" if the second half grew less than --flat-mb."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.falapi import UNSEEDED, SimControl, Target, body_text, targets, tracker_backlog
from bench.options import add_stack_options, stack_options
from bench.processes import Stack, running_stack
from bench.procfs import tree_rss_mb
from bench.report import log_summary, machine_info, write_json
from bench.rss import redis_used_mb

# Of every ten requests: one submit, six status polls, three result fetches.
PATTERN = ("submit", "status", "status", "result", "status", "status", "result", "status", "status", "result")
MAX_IN_FLIGHT = 64


@dataclass
class KindStats:
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self, seconds: float) -> dict[str, Any]:
        count = len(self.latencies_ms)
        ordered = sorted(self.latencies_ms)

        def pick(q: float) -> float:
            return round(ordered[min(count - 1, int(q * count))], 2) if count else 0.0

        return {
            "requests": count,
            "rps": round(count / seconds, 1) if seconds else 0.0,
            "statuses": dict(self.statuses),
            "p50_ms": pick(0.5),
            "p99_ms": pick(0.99),
        }


@dataclass
class Load:
    """The soak's client side: which jobs to poll and fetch, and what happened to every request."""

    target: Target
    running: deque[str]
    completed: deque[str]
    kinds: dict[str, KindStats] = field(default_factory=lambda: {k: KindStats() for k in set(PATTERN)})
    skipped: int = 0  # requests not sent because MAX_IN_FLIGHT were still waiting: the gateway fell behind
    turn: int = 0

    async def one(self, client: httpx.AsyncClient, kind: str) -> None:
        self.turn += 1
        started = time.monotonic()
        try:
            code = await getattr(self, kind)(client)
        except httpx.HTTPError as exc:
            code = type(exc).__name__
        self.kinds[kind].statuses[code] += 1
        self.kinds[kind].latencies_ms.append((time.monotonic() - started) * 1000)

    async def submit(self, client: httpx.AsyncClient) -> str:
        response = await client.post(
            self.target.submit_path, content=body_text(UNSEEDED), headers={"Content-Type": "application/json"}
        )
        if response.status_code == 200:
            self.running.append(response.json()["request_id"])
        return str(response.status_code)

    async def status(self, client: httpx.AsyncClient) -> str:
        pool = self.running or self.completed
        request_id = pool[self.turn % len(pool)]
        response = await client.get(self.target.status_path(request_id))
        if response.status_code == 200 and response.json().get("status") == "COMPLETED" and request_id in self.running:
            self.running.remove(request_id)
            self.completed.append(request_id)
        return str(response.status_code)

    async def result(self, client: httpx.AsyncClient) -> str:
        request_id = self.completed[self.turn % len(self.completed)]
        return str((await client.get(self.target.result_path(request_id))).status_code)


async def drive(load: Load, seconds: float, rate: float) -> None:
    """Send ``rate`` requests per second for ``seconds``, in PATTERN's mix, at most MAX_IN_FLIGHT at once."""
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()
    async with load.target.async_client(connections=MAX_IN_FLIGHT) as client:
        start, sent = time.monotonic(), 0
        while (now := time.monotonic()) < start + seconds:
            due = start + sent / rate
            if due > now:
                await asyncio.sleep(due - now)
                continue
            kind = PATTERN[sent % len(PATTERN)]
            sent += 1
            if slots.locked():
                load.skipped += 1
                continue
            await slots.acquire()
            task = asyncio.create_task(load.one(client, kind))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            task.add_done_callback(lambda _: slots.release())
        await asyncio.gather(*tasks)


def sample(stack: Stack, start: float) -> dict[str, Any]:
    """One reading; a gateway ended from outside is restarted first (and the soak is then inconclusive)."""
    stack.revive_gateway(f"soak at {time.monotonic() - start:.0f}s")
    return {
        "t_s": round(time.monotonic() - start, 1),
        "gateway_pid": stack.gateway.pid,
        "gateway_rss_mb": tree_rss_mb(stack.gateway.pid)[0],
        "simulator_rss_mb": tree_rss_mb(stack.simulator.pid)[0],
        "redis_used_mb": redis_used_mb(stack),
        "tracker_backlog": tracker_backlog(stack),
    }


async def sampler(stack: Stack, start: float, every: float, samples: list[dict[str, Any]]) -> None:
    while True:
        samples.append(sample(stack, start))
        point = samples[-1]
        print(f"  t={point['t_s']:>6.0f}s gateway RSS {point['gateway_rss_mb']:.1f} MB", flush=True)
        await asyncio.sleep(every)


async def soak(stack: Stack, load: Load, seconds: float, rate: float, every: float) -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    start = time.monotonic()
    sampling = asyncio.create_task(sampler(stack, start, every, samples))
    try:
        await drive(load, seconds, rate)
    finally:
        sampling.cancel()
    samples.append(sample(stack, start))
    return samples


def trend(samples: list[dict[str, Any]], flat_mb: float) -> dict[str, Any]:
    """First, last and max RSS, the least-squares slope (MB/min) over the second half, and the verdict."""
    rss = [s["gateway_rss_mb"] for s in samples]
    half = samples[-1]["t_s"] / 2
    second = [s for s in samples if s["t_s"] >= half]
    slope = 0.0
    if len(second) >= 2:
        xs = [s["t_s"] / 60 for s in second]
        slope = statistics.linear_regression(xs, [s["gateway_rss_mb"] for s in second]).slope
    growth = slope * (second[-1]["t_s"] - second[0]["t_s"]) / 60 if second else 0.0
    return {
        "first_mb": rss[0],
        "last_mb": rss[-1],
        "max_mb": max(rss),
        "second_half_slope_mb_per_min": round(slope, 3),
        "second_half_growth_mb": round(growth, 2),
        "flat_threshold_mb": flat_mb,
        "verdict": "flat" if growth < flat_mb else "growing",
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (default 10)")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second, all kinds (default 100)")
    parser.add_argument("--sample-seconds", type=float, default=10.0, help="RSS sampling interval (default 10)")
    parser.add_argument("--flat-mb", type=float, default=5.0, help="largest second-half growth called flat")
    add_stack_options(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    seconds = args.minutes * 60
    machine = machine_info(None)
    logs = args.out / "logs" / "soak"
    print(f"soak: {args.minutes:g} min at {args.rate:g} req/s; RSS sampled every {args.sample_seconds:g}s")
    with running_stack(stack_options(args, queue_seconds=1.0, processing_seconds=1.0), keep_logs=logs) as stack:
        sim = SimControl(stack.sim_url)
        sim.configure(retention_seconds=60)  # the simulator forgets finished jobs, so its own memory stays bounded
        sim.close()
        _, gateway = targets(stack)
        with gateway.client() as client:
            primed = gateway.completed_job(client, UNSEEDED)
        load = Load(gateway, deque(maxlen=200), deque([primed], maxlen=200))
        samples = asyncio.run(soak(stack, load, seconds, args.rate, args.sample_seconds))
        notes = stack.notes
    verdict = trend(samples, args.flat_mb)
    if notes:  # the samples span more than one gateway process
        verdict["verdict"] = "inconclusive: the gateway was ended from outside and restarted"
    results: dict[str, Any] = {
        "machine": machine,
        "settings": {"minutes": args.minutes, "rate": args.rate, "sample_seconds": args.sample_seconds},
        "rss": verdict,
        "load": {kind: stats.summary(seconds) for kind, stats in sorted(load.kinds.items())},
        "skipped_requests": load.skipped,
        "samples": samples,
        "gateway_log": log_summary(logs / "gateway.log"),
        "notes": notes,
    }
    write_json(args.out / "soak.json", results)
    print(
        f"\nsoak: gateway RSS first {verdict['first_mb']:.1f} MB, last {verdict['last_mb']:.1f} MB, max "
        f"{verdict['max_mb']:.1f} MB; second half {verdict['second_half_slope_mb_per_min']:+.2f} MB/min "
        f"({verdict['second_half_growth_mb']:+.1f} MB): {verdict['verdict']}"
    )
    for kind, summary in results["load"].items():
        print(
            f"  {kind:<7} {summary['rps']:>6.1f} req/s p50 {summary['p50_ms']} ms p99 {summary['p99_ms']} ms "
            f"{summary['statuses']}"
        )
    if load.skipped:
        print(f"  {load.skipped} requests skipped: {MAX_IN_FLIGHT} were still waiting (the gateway fell behind)")
    if results["gateway_log"]:
        print("  gateway warnings/errors logged: " + ", ".join(f"{k} x{v}" for k, v in results["gateway_log"].items()))
    for note in notes:
        print(f"  note: {note}")
    print(f"soak: wrote {args.out / 'soak.json'}")
    return 1 if notes else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("soak: interrupted; every process it started was stopped", file=sys.stderr)
        sys.exit(130)
