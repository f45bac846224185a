"""Fixtures of the fault suite: a TLS rig per test (on the suite's Redis or a private one) and the private Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import trustme

from tests.faults.rig import FaultRig, PrivateRedis, WarmPool
from tests.support.loopback import free_port
from tests.support.redis import flush

MakeRig = Callable[..., FaultRig]


@pytest.fixture(scope="session")
def warm_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmPool]:
    pool = WarmPool(tmp_path_factory.mktemp("fault-warm"))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def shared_simulator(tmp_path_factory: pytest.TempPathFactory, warm_pool: WarmPool) -> Iterator[FaultRig]:
    """One simulator process for the whole suite; each rig resets it."""
    tmp = tmp_path_factory.mktemp("fault-simulator")
    holder = FaultRig(
        tmp=tmp, ca=tmp / "none", redis_url="redis://unused", sim_port=free_port(), gw_port=0, pool=warm_pool
    )
    try:
        holder.start_simulator()
        yield holder
    finally:
        holder.stop()


@pytest.fixture
def make_rig(tmp_path: Path, shared_simulator: FaultRig, warm_pool: WarmPool) -> MakeRig:
    """A rig (not started) whose gateway uses ``redis_url`` (and ``env`` on top of the fault settings), with a fresh
    certificate in the test's directory. It uses the session's simulator unless ``own_simulator`` (a test that stops
    and restarts it)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))

    def make(redis_url: str, *, own_simulator: bool = False, env: dict[str, str] | None = None) -> FaultRig:
        return FaultRig(
            tmp=tmp_path,
            ca=tmp_path / "ca.pem",
            redis_url=redis_url,
            sim_port=free_port() if own_simulator else shared_simulator.sim_port,
            gw_port=free_port(),
            simulator=None if own_simulator else shared_simulator.simulator,
            owns_simulator=own_simulator,
            pool=warm_pool,
            extra_env=env or {},
        )

    return make


@pytest.fixture
def shared_store(redis_url: str) -> Iterator[redis.Redis]:
    """The suite's database, emptied before and after: no other test uses it while this one's processes run."""
    flush(redis_url)
    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
    try:
        yield client
    finally:
        client.close()
        flush(redis_url)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own, which it may restart, stop or freeze; killed at the end."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = PrivateRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.close()
