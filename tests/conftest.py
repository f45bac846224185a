"""The Redis every suite talks to (see tests.support.redis), and a client on it whose database is flushed per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import structlog
from redis.asyncio import Redis

from service.redis_client import connect_url
from tests.support.redis import SuiteRedis, suite_redis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[SuiteRedis]:
    with suite_redis() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: SuiteRedis) -> str:
    return redis_server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = connect_url(redis_url, max_connections=200, timeout=5.0)
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
