"""Shared fixtures. Tests talk to a real Redis: ``GATEWAY_TEST_REDIS_URL``, else 127.0.0.1:6379 if it answers,
else (or with ``GATEWAY_TEST_EMBEDDED_REDIS=1``) an embedded valkey server started for the session. Test data lives
in database 15, flushed per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from redis.asyncio import Redis

from service.embedded import EmbeddedRedis
from service.redis_client import connect_url

TEST_DB = 15


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    configured = os.environ.get("GATEWAY_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    local = f"redis://127.0.0.1:6379/{TEST_DB}"
    try:
        if os.environ.get("GATEWAY_TEST_EMBEDDED_REDIS"):
            raise redis.ConnectionError("embedded server requested")
        redis.Redis.from_url(local, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        embedded = EmbeddedRedis()
        yield embedded.start().rsplit("/", 1)[0] + f"/{TEST_DB}"
        embedded.stop()
        return
    yield local


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = connect_url(redis_url, max_connections=200, timeout=5.0)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()
