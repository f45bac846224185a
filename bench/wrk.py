"""Running wrk with bench/lua/bench.lua and reading the JSON line its ``done`` hook prints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).resolve().parent / "lua" / "bench.lua"
MARKER = "BENCH_JSON "
WRK_THREADS = 2  # the machine this was written for has 2 cores
WRK_TIMEOUT = "10s"  # a slower answer counts as a socket timeout, not as a latency
WARMUP_SECONDS = 1.0


class WrkMissing(RuntimeError):
    """wrk is not installed."""


class WrkFailed(RuntimeError):
    """wrk ran but printed no result."""


@dataclass(frozen=True, slots=True)
class WrkRequest:
    """What every request of one run looks like; with several paths the requests rotate over them."""

    method: str
    paths: tuple[str, ...]
    auth: str | None = None
    body: str | None = None


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    non_2xx: int  # wrk counts answers with a status above 399; no 1xx or 3xx occur here
    socket_errors: int  # connect, read, write and timeout errors
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    warmup_requests: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def find_wrk() -> str:
    found = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)
    if found is None:
        raise WrkMissing("wrk is not installed: install it with `apt-get install wrk` (Debian/Ubuntu) and run again")
    return found


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].split(" Copyright")[0].strip() if lines else "unknown"


def require_wrk() -> str:
    """The wrk binary, or exit 2 with a message telling how to install it."""
    try:
        return find_wrk()
    except WrkMissing as exc:
        print(f"bench: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run_wrk(
    wrk: str,
    base_url: str,
    request: WrkRequest,
    *,
    connections: int,
    seconds: float,
    warmup: float = WARMUP_SECONDS,
) -> WrkResult:
    """A warm-up run (discarded) and then the measured run, both with the same parameters."""
    warmed = _run_once(wrk, base_url, request, connections=connections, seconds=warmup).requests if warmup > 0 else 0
    measured = _run_once(wrk, base_url, request, connections=connections, seconds=seconds)
    return replace(measured, warmup_requests=warmed)


def _run_once(wrk: str, base_url: str, request: WrkRequest, *, connections: int, seconds: float) -> WrkResult:
    env = {
        **os.environ,
        "BENCH_METHOD": request.method,
        "BENCH_BODY": request.body or "",
        "BENCH_AUTH": request.auth or "",
        "BENCH_PATHS": "\n".join(request.paths),
    }
    threads = max(1, min(WRK_THREADS, connections))  # wrk refuses fewer connections than threads
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        WRK_TIMEOUT,
        "-s",
        str(LUA_SCRIPT),
        base_url.rstrip("/") + request.paths[0],
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False)
    return parse_output(done.stdout, done.stderr)


def parse_output(stdout: str, stderr: str = "") -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            return result_from_json(json.loads(line[len(MARKER) :]))
    raise WrkFailed(f"wrk printed no result:\n{stdout[-2000:]}\n{stderr[-2000:]}")


def result_from_json(data: dict[str, Any]) -> WrkResult:
    errors = data["errors"]
    latency = data["latency_us"]
    duration = max(float(data["duration_us"]) / 1e6, 1e-9)
    requests = int(data["requests"])
    return WrkResult(
        requests=requests,
        duration_s=round(duration, 3),
        rps=round(requests / duration, 1),
        non_2xx=int(errors["status"]),
        socket_errors=int(errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]),
        mean_ms=round(float(latency["mean"]) / 1000, 3),
        p50_ms=round(float(latency["p50"]) / 1000, 3),
        p90_ms=round(float(latency["p90"]) / 1000, 3),
        p99_ms=round(float(latency["p99"]) / 1000, 3),
        max_ms=round(float(latency["max"]) / 1000, 3),
    )
