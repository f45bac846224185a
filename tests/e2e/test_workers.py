"""``serve --workers 2`` as a real process tree: two gateways on one port, each with its own metrics port, and
SIGTERM stopping all of them."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.e2e import ROOT, Processes, running, tls_processes
from tests.support.loopback import free_ports
from tests.support.redis import flush
from tests.support.waiting import eventually_sync

ENDPOINT = "fal-ai/bytedance/seedance/v1.5/pro/text-to-video"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[tuple[Processes, int]]:
    procs = tls_processes(tmp_path_factory.mktemp("workers"), redis_url)
    metrics_port = free_ports(2, avoid={procs.sim_port, procs.gw_port})  # worker N: metrics on this port + N
    procs.extra_env["GATEWAY_METRICS_PORT"] = str(metrics_port)
    with running(procs, lambda: flush(redis_url), gateway=False) as started:
        yield started, metrics_port


def children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    found: list[int] = []
    for task in tasks.iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def served_by(port: int, labels: str) -> float:
    """Requests one worker served with these labels, from its own metrics port."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gateway_http_requests_total{") and labels in line
    )


def test_two_workers_share_the_port_and_stop_together(rig: tuple[Processes, int]) -> None:
    procs, metrics_port = rig
    log = (procs.tmp / "workers.log").open("ab")
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--workers", "2"],
        cwd=ROOT,
        env=procs.gateway_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def ready() -> bool:
            try:
                metrics = [httpx.get(f"http://127.0.0.1:{metrics_port + n}/metrics", timeout=2) for n in (0, 1)]
                health = httpx.get(f"{procs.gw_url}/readyz", verify=procs.tls(), timeout=2)
            except httpx.TransportError:
                return False
            return health.status_code == 200 and all(answer.status_code == 200 for answer in metrics)

        eventually_sync(ready, timeout=30)

        def both_serve() -> bool:  # a worker that has not bound the port yet gets no connections
            httpx.get(f"{procs.gw_url}/readyz", verify=procs.tls(), timeout=2, headers={"Connection": "close"})
            return all(served_by(metrics_port + n, 'route="/readyz"') > 0 for n in (0, 1))

        eventually_sync(both_serve, timeout=30)
        workers = children(supervisor.pid)
        assert len(workers) == 2
        key = procs.new_key("workers")
        with httpx.Client(base_url=procs.gw_url, verify=procs.tls(), timeout=30) as client:
            # New connections each time: the kernel spreads them over both workers.
            for _ in range(20):
                answer = client.post(
                    f"/queue/{ENDPOINT}",
                    json={"prompt": "a fox"},
                    headers={"Authorization": f"Key {key}", "Connection": "close"},
                )
                assert answer.status_code == 200, answer.text
        served = [served_by(metrics_port + n, 'method="POST",route="/queue/{endpoint_id}"') for n in (0, 1)]
        assert sum(served) == 20
        assert all(count > 0 for count in served), f"one worker served everything: {served}"
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(timeout=40)
        log.close()
    assert code == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
