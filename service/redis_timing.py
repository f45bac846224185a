"""Redis latency as the gateway sees it: a client that times every command and pipeline, and whether Redis answers.

``gateway_redis_command_duration_seconds{command}`` observes each command (its name: the commands are the
gateway's own, a bounded set) and each pipeline (``PIPELINE``, or ``MULTI`` for a transaction); ``gateway_redis_up``
is 1 after a command that reached Redis and 0 after one that could not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Histogram
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.metrics import Metrics

Observe = Callable[[str, float, bool], None]
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def observer(metrics: Metrics) -> Observe:
    children: dict[str, Histogram] = {}

    def observe(command: str, seconds: float, reached: bool) -> None:
        child = children.get(command)
        if child is None:
            child = children[command] = metrics.redis_duration.labels(command=command)
        child.observe(seconds)
        metrics.redis_up.set(1 if reached else 0)

    return observe


class TimedRedis(Redis):
    def __init__(self, *, observe: Observe, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.observe = observe

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        started, reached = time.perf_counter(), True
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except _UNREACHABLE:
            reached = False
            raise
        finally:
            self.observe(str(args[0]).upper(), time.perf_counter() - started, reached)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return TimedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint, self.observe)


class TimedPipeline(Pipeline):
    def __init__(self, pool: Any, callbacks: Any, transaction: bool, shard_hint: str | None, observe: Observe) -> None:
        super().__init__(pool, callbacks, transaction, shard_hint)
        self.observe = observe

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        started, reached = time.perf_counter(), True
        try:
            return await super().execute(raise_on_error)
        except _UNREACHABLE:
            reached = False
            raise
        finally:
            self.observe("MULTI" if self.is_transaction else "PIPELINE", time.perf_counter() - started, reached)


class TimedRedisCluster(RedisCluster):
    """:class:`TimedRedis` for a Redis Cluster client: every command and pipeline timed the same way."""

    def __init__(self, *, observe: Observe, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.observe = observe

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        started, reached = time.perf_counter(), True
        try:
            return await super().execute_command(*args, **kwargs)
        except _UNREACHABLE:
            reached = False
            raise
        finally:
            self.observe(str(args[0]).upper(), time.perf_counter() - started, reached)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # redis-py's own error
        return TimedClusterPipeline(self, transaction, self.observe)  # type: ignore[abstract] # as redis-py's own


class TimedClusterPipeline(ClusterPipeline):
    def __init__(self, client: RedisCluster, transaction: Any | None, observe: Observe) -> None:
        super().__init__(client, transaction)
        self.observe = observe

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        started, reached = time.perf_counter(), True
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except _UNREACHABLE:
            reached = False
            raise
        finally:
            self.observe("MULTI" if self._transaction else "PIPELINE", time.perf_counter() - started, reached)
