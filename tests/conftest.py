"""The Redis every suite talks to (see tests.support.redis), and a client on it whose database is flushed per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import structlog
from redis.asyncio import Redis

from tests.support.redis import SuiteRedis, spread_embedded_ports, suite_redis
from tests.support.redis_cluster import ClusterRedis, connect_any, redis_cluster


def pytest_configure(config: pytest.Config) -> None:
    spread_embedded_ports()  # each process, each xdist worker among them


@pytest.fixture(scope="session")
def redis_server() -> Iterator[SuiteRedis]:
    with suite_redis() as server:
        yield server


@pytest.fixture(scope="session")
def cluster_server() -> Iterator[ClusterRedis]:
    """A three-master Redis Cluster on loopback (tests.support.redis_cluster), started by the first test that needs
    it: those of the modules that declare ``REDIS_MODES``."""
    with redis_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_mode(request: pytest.FixtureRequest) -> str:
    """``single`` unless the module runs on both (``REDIS_MODES``, see ``pytest_generate_tests``)."""
    return str(getattr(request, "param", "single"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    modes = getattr(metafunc.module, "REDIS_MODES", None)
    if modes and "redis_mode" in metafunc.fixturenames:
        metafunc.parametrize("redis_mode", modes, indirect=True, scope="session")


@pytest.fixture(scope="session")
def redis_url(redis_server: SuiteRedis, redis_mode: str, request: pytest.FixtureRequest) -> str:
    if redis_mode == "cluster":
        cluster: ClusterRedis = request.getfixturevalue("cluster_server")
        return cluster.url
    return redis_server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = connect_any(redis_url, max_connections=200, timeout=5.0)  # FLUSHDB: every master of a cluster
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture(scope="session", autouse=True)
def plain_log_tracebacks() -> None:
    """structlog's default console output renders tracebacks with rich, about a second each, which a background loop
    surviving a test's Redis outage feels; the tests keep the default output but with plain tracebacks."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
        ]
    )
