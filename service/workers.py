"""``serve --workers N``: N gateway processes on one port, for a host with several cores.

Each worker is this same command run again with ``--shared-port``: a whole gateway (API, tracker, webhook delivery)
that binds the port with SO_REUSEPORT, so the kernel spreads new connections over the workers. They share nothing
but Redis, exactly as replicas do, so every guarantee that holds across replicas holds across workers. This process
only supervises: it passes SIGTERM and SIGINT on (each worker drains as a single process does), restarts a worker
that dies unexpectedly, and exits when all have stopped.

In Kubernetes, prefer one worker per pod and more replicas; ``--workers`` is for hosts and VMs. Each worker keeps
its own metrics, so a scrape of the shared port sees one worker; with ``GATEWAY_METRICS_PORT`` set, worker N also
serves its metrics on that port + N: scrape those instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

import structlog

log = structlog.get_logger("service.workers")

RESTART_PAUSE_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 30.0


def worker_command(argv: Sequence[str]) -> list[str]:
    """This process's command line for one worker: ``--workers`` dropped, ``--shared-port`` added."""
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            args.append(arg)
    return [sys.executable, "-m", "service", *args, "--shared-port"]


def indexed(command: list[str], index: int) -> list[str]:
    return [*command, "--worker-index", str(index)]


def supervise(argv: Sequence[str], workers: int) -> int:
    command = worker_command(argv)
    env = {**os.environ, "GATEWAY_WORKERS": "1"}
    stopping = False

    def start(index: int) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(indexed(command, index), env=env)  # noqa: S603 - our own argv
        log.info("worker_started", index=index, pid=proc.pid)
        return proc

    procs = [start(index) for index in range(workers)]

    def forward(signum: int, frame: FrameType | None) -> None:
        del frame
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    while not stopping:
        for index, proc in enumerate(procs):
            code = proc.poll()
            if code is not None and not stopping:
                log.error("worker_exited", index=index, pid=proc.pid, code=code)
                time.sleep(RESTART_PAUSE_SECONDS)
                procs[index] = start(index)
        time.sleep(0.2)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return 0 if all(code in (0, -signal.SIGTERM, -signal.SIGINT) for code in codes) else 1
