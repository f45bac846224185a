"""Redis connection factory and Lua script loading."""

from __future__ import annotations

from importlib import resources

from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript

from service.config import Settings


def connect(settings: Settings) -> Redis:
    if not settings.redis_url:
        raise ValueError("GATEWAY_REDIS_URL is not set")
    return connect_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_socket_timeout_seconds,
    )


def connect_url(url: str, *, max_connections: int, timeout: float) -> Redis:
    """A client on a bounded pool that *waits* (up to ``timeout``) for a free connection under load instead of
    failing, so a burst of requests queues briefly rather than erroring."""
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)


def load_script(redis: Redis, package: str, name: str) -> AsyncScript:
    """Register a ``.lua`` file shipped in ``package``; redis-py runs it with EVALSHA and reloads it when needed."""
    source = resources.files(package).joinpath("lua", name).read_text()
    return redis.register_script(source)
