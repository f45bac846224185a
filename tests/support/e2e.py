"""The end-to-end rig: simulator and gateway as real processes (gateway over TLS), and fal_client in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trustme

from tests.support.loopback import free_port, wait_ready

E2E_ADMIN_TOKEN = "e2e-admin-token"
SIM_KEY = "e2e-simulator-key"
SCENARIOS = "tests.e2e.fal_client_scenarios"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Processes:
    tmp: Path
    ca: Path
    redis_url: str
    sim_port: int
    gw_port: int
    logs: list[Path] = field(default_factory=list)
    gateway: subprocess.Popen[bytes] | None = None
    simulator: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # the gateway's own settings for one module

    @property
    def gw_url(self) -> str:
        return f"https://127.0.0.1:{self.gw_port}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    def gateway_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.gw_port),
            "GATEWAY_REDIS_URL": self.redis_url,
            "GATEWAY_UPSTREAM_URL": self.sim_url,
            "GATEWAY_FAL_KEY": SIM_KEY,
            "GATEWAY_ADMIN_TOKEN": E2E_ADMIN_TOKEN,
            "GATEWAY_TLS_CERT_FILE": str(self.tmp / "server.pem"),
            "GATEWAY_TLS_KEY_FILE": str(self.tmp / "server.key"),
            "GATEWAY_TRACKER_POLL_INITIAL_SECONDS": "0.1",
            "GATEWAY_TRACKER_POLL_MAX_SECONDS": "0.5",
            "GATEWAY_TRACKER_POLL_QUEUED_MAX_SECONDS": "0.5",
            "GATEWAY_TRACKER_LEASE_SECONDS": "2",
            "GATEWAY_LOG_JSON": "true",
            **self.extra_env,
        }

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def start_simulator(self) -> None:
        log = self.tmp / "simulator.log"
        self.logs.append(log)
        self.simulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service",
                "simulator",
                "--port",
                str(self.sim_port),
                "--queue-seconds",
                "0.3",
                "--processing-seconds",
                "1.5",
                "--fal-key",
                SIM_KEY,
            ],
            cwd=ROOT,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        simulator = self.simulator
        wait_ready(f"{self.sim_url}/_sim/stats", alive=lambda: simulator.poll() is None)

    def start_gateway(self) -> None:
        log = self.tmp / f"gateway-{len(self.logs)}.log"
        self.logs.append(log)
        self.gateway = subprocess.Popen(
            [sys.executable, "-m", "service", "serve"],
            cwd=ROOT,
            env=self.gateway_env(),
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        gateway = self.gateway
        wait_ready(f"{self.gw_url}/healthz", verify=self.tls(), alive=lambda: gateway.poll() is None)

    def kill_gateway(self) -> None:
        assert self.gateway is not None
        self.gateway.send_signal(signal.SIGKILL)
        self.gateway.wait(timeout=10)

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.gw_url}{path}",
            headers={"Authorization": f"Bearer {E2E_ADMIN_TOKEN}"},
            verify=self.tls(),
            timeout=10,
            **kwargs,
        )

    def new_key(self, tenant: str) -> str:
        self.admin("POST", "/admin/tenants", json={"id": tenant, "name": tenant})
        response = self.admin("POST", f"/admin/tenants/{tenant}/keys")
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
        return key

    def fal_client(
        self, scenario: str, key: str, *args: str, timeout: float = 60, module: str = SCENARIOS
    ) -> dict[str, Any]:
        """``python -m module scenario *args`` as a real client of the gateway (with ``key``); its last JSON line."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "GATEWAY_"))}
        env |= {
            "FAL_KEY": key,
            "FAL_RUN_HOST": f"127.0.0.1:{self.gw_port}/run",
            "FAL_QUEUE_RUN_HOST": f"127.0.0.1:{self.gw_port}/queue",
            "SSL_CERT_FILE": str(self.ca),
        }
        done = subprocess.run(
            [sys.executable, "-m", module, scenario, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
        return result

    def sim_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.sim_url}/_sim/stats", timeout=5).json()
        return stats

    def sim_fault(self, **rule: Any) -> None:
        """Arm a fault on the simulator process through its ``/_sim`` control API."""
        response = httpx.post(f"{self.sim_url}/_sim/faults", json=rule, timeout=5)
        assert response.status_code == 201, response.text

    def stop(self) -> None:
        for proc in (self.gateway, self.simulator):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())


def tls_processes(tmp: Path, redis_url: str, extra_env: dict[str, str] | None = None) -> Processes:
    """A rig in ``tmp`` with a fresh CA and server certificate for 127.0.0.1, on free ports; nothing started yet."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp / "server.key"))
    return Processes(
        tmp=tmp,
        ca=tmp / "ca.pem",
        redis_url=redis_url,
        sim_port=free_port(),
        gw_port=free_port(),
        extra_env=extra_env or {},
    )


@contextmanager
def running(procs: Processes, reset: Callable[[], None], *, gateway: bool = True) -> Iterator[Processes]:
    """The rig's simulator (and, unless told otherwise, its gateway) started, then stopped; ``reset`` clears the
    rig's Redis before and after, so a module's processes never see another module's state."""
    reset()
    try:
        procs.start_simulator()
        if gateway:
            procs.start_gateway()
        yield procs
    finally:
        procs.stop()
        reset()
