"""The Redis every suite talks to (see tests.support.redis), and a client on it whose database is flushed per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
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
