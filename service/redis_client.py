"""Redis connection factory and Lua script loading."""

from __future__ import annotations

from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from service.config import Settings


def connect(settings: Settings) -> Redis:
    if not settings.redis_url:
        raise ValueError("GATEWAY_REDIS_URL is not set")
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=settings.redis_socket_timeout_seconds,
        socket_connect_timeout=settings.redis_socket_timeout_seconds,
        health_check_interval=30,
        retry_on_timeout=False,
    )


def load_script(redis: Redis, package: str, name: str) -> AsyncScript:
    """Register a ``.lua`` file shipped in ``package``; redis-py runs it with EVALSHA and reloads it when needed."""
    source = resources.files(package).joinpath("lua", name).read_text()
    return redis.register_script(source)
