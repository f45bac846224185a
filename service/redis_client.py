"""Redis connection factory (dead pooled connections are replaced before a command is sent) and Lua script loading."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from importlib import resources
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ClusterDownError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.maint_notifications import MaintNotificationsConfig

from service.config import Settings
from service.redis_timing import Observe, TimedClusterPipeline, TimedRedis, TimedRedisCluster

# A failure before the command left is retried this many times, after 10-20, 20-40 and 40-80 ms: under 0.15 s of
# waiting per command, so a real outage still answers 503 at once (a refused connect fails in well under 1 ms).
UNSENT_RETRIES = 3
UNSENT_BACKOFF = EqualJitterBackoff(cap=0.1, base=0.01)
HEALTH_CHECK_INTERVAL_SECONDS = 30
PUBSUB_RESERVE = 4  # cluster mode: connections per node kept for subscriptions (GatewayRedisCluster)


class CommandNotSentError(RedisConnectionError):
    """The connection failed before the command was written whole, so the server cannot have run it: safe to retry."""


def connect(settings: Settings, *, observe: Observe | None = None) -> Redis:
    """The gateway's client for ``GATEWAY_REDIS_URL``; with ``observe``, every command is timed
    (``service/redis_timing.py``)."""
    if not settings.redis_url:
        raise ValueError("GATEWAY_REDIS_URL is not set")
    connector = connect_cluster_url if settings.redis_cluster else connect_url
    return connector(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_socket_timeout_seconds,
        observe=observe,
    )


class GatewayRedisCluster(RedisCluster):
    """A cluster client that retries a command only where it cannot have run: a ``CommandNotSentError`` (see
    :func:`connect_url`), a cluster that is down or a slot not covered (answered before running anything). Stock
    ``RedisCluster`` also retries a plain ``ConnectionError``/``TimeoutError``, which may run a command twice.

    It also discovers the cluster before routing the first command: redis-py 8.1 routes first and initializes
    after, so concurrent first commands are sent to the seed node while initialization closes its connections
    (``AttributeError: 'NoneType' object has no attribute 'writelines'``).

    Its nodes' pools fail at once (``MaxConnectionsError``) when all their connections are in use, where
    :func:`connect_url`'s pool waits: so at most ``max_connections - PUBSUB_RESERVE`` commands and pipelines (each
    takes at most one connection per node) run at once, the others wait for a permit; the rest is left for the
    long-lived pub/sub connections (one per event bus on the client)."""

    ERRORS_ALLOW_RETRY = (CommandNotSentError, ClusterDownError, SlotNotCoveredError)  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.permits = asyncio.Semaphore(max(1, self.connection_kwargs["max_connections"] - PUBSUB_RESERVE))

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.permits:
            if self._initialize:
                await self.initialize()
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # redis-py's own error
        return _PermittedPipeline(self, transaction)  # type: ignore[abstract] # as redis-py's own pipeline()


class _PermittedPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        async with cast("GatewayRedisCluster", self.cluster_client).permits:
            return await super().execute(raise_on_error, allow_redirections)


class _TimedPermittedPipeline(TimedClusterPipeline, _PermittedPipeline):  # type: ignore[misc] # redis-py's stubs
    pass


class TimedGatewayRedisCluster(TimedRedisCluster, GatewayRedisCluster):  # type: ignore[misc] # redis-py's stubs
    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)
        return _TimedPermittedPipeline(self, transaction, self.observe)  # type: ignore[abstract]


def connect_cluster_url(url: str, *, max_connections: int, timeout: float, observe: Observe | None = None) -> Redis:
    """A Redis Cluster client, ``url`` one seed node; the same timeouts, retry rule and connection classes as
    :func:`connect_url`. MOVED/ASK redirections and topology changes are followed by redis-py's cluster client.

    Typed as ``Redis``: the gateway uses only commands both clients have, with keys that share a slot per script,
    transaction or multi-key command (``tests/unit/test_key_slots.py``); pub/sub goes through :mod:`service.events`,
    which uses sharded pub/sub on a cluster."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "max_connections": max_connections,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
        "retry": Retry(UNSENT_BACKOFF, UNSENT_RETRIES),
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }
    cls = GatewayRedisCluster if observe is None else TimedGatewayRedisCluster
    client = cls.from_url(url, **options) if observe is None else cls.from_url(url, observe=observe, **options)
    connection_class = _UNSENT_ON_FAILURE[client.connection_kwargs["connection_class"]]
    client.connection_kwargs["connection_class"] = connection_class  # shared with the nodes manager's new nodes
    for node in client.startup_nodes:
        node.connection_class = cast("type[Connection]", connection_class)
    return cast("Redis", client)


def connect_url(url: str, *, max_connections: int, timeout: float, observe: Observe | None = None) -> Redis:
    """A client on a bounded pool that *waits* (up to ``timeout``) for a free connection under load instead of
    failing, and that replaces dead pooled connections (after a Redis restart) instead of failing one command on each.

    What is retried, and why it is safe (redis-py 8.1, ``redis/asyncio/``):

    - ``Redis.execute_command`` (and ``Pipeline.execute``) run the *whole* exchange, ``send_command`` then
      ``parse_response``, inside ``conn.retry.call_with_retry`` and retry any error of the ``Retry``'s
      ``supported_errors``; stock redis-py makes no difference between a failure while sending and one while reading.
      Retrying ``ConnectionError``/``TimeoutError`` as such (``retry_on_error``, ``retry_on_timeout``, or the
      ``Retry(..., 10)`` a bare ``Redis(host=...)`` gets by default) would run a command again whose reply was lost
      after the server ran it: a second admission or settlement in our Lua scripts. So the ``Retry`` here supports one
      error only, ``CommandNotSentError``, which ``_UnsentOnFailure.send_packed_command`` raises in place of a plain
      ``ConnectionError`` from ``Connection.send_packed_command``. That method (re)connects a disconnected connection,
      runs the idle health check (a ``PING``) and writes; it turns an ``OSError`` of the write into
      ``ConnectionError("Error ... while writing to socket")`` after ``disconnect(nowait=True)``. Every such failure
      leaves the command unsent or incomplete: asyncio drops writes to a transport that has lost its connection, and
      ``StreamWriter.drain`` raises only once the connection is lost, when the transport also discards what it still
      buffered; Redis runs no partial command, nor the queue of a ``MULTI`` without its ``EXEC``. The retry's failure
      callback (``Redis._close_connection``) disconnects, so the next attempt connects afresh.
    - Not retried: everything raised while reading (the command may have run), ``TimeoutError`` (a timed-out write is
      still flushed by ``transport.close()``, and waiting again would only slow down an outage), and ``ConnectionError``
      subclasses that are server replies (``BusyLoadingError``, ``AuthenticationError``): they answer 503 at once.
    - A non-transactional pipeline fails as a whole even when its first commands ran, and is retried as a whole: only
      idempotent commands belong in one (``JobStore.create``'s history index: ZADD, ZREMRANGEBYSCORE, EXPIRE).

    Dead pooled connections are found before a command goes out. One the server closed (a restart: FIN) is
    reconnected at checkout by ``ConnectionPool.ensure_connection``, which checks ``can_read()`` (true at
    ``StreamReader.at_eof()``) but skips that check while ``maint_notifications_enabled()``, which the default RESP3
    protocol turns on (``"auto"``): our servers send no maintenance notifications, so they are off. One the server
    reset (RST) looks fine at checkout (the reader holds the error, not an EOF), then asyncio drops the write and
    ``drain`` raises: a ``CommandNotSentError``, retried on a fresh connection. One idle over
    ``HEALTH_CHECK_INTERVAL_SECONDS`` is first checked with a ``PING``: a reset or a close in answer is a failure
    before the command, so retried too (a ``PING`` timing out is not). Still answered 503 once: a connection whose
    close arrives while the command is in flight, or one reused before the loop has seen its FIN, since the failure
    then shows only in the read.
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "max_connections": max_connections,
        "timeout": timeout,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": HEALTH_CHECK_INTERVAL_SECONDS,
        "retry": Retry(UNSENT_BACKOFF, UNSENT_RETRIES, supported_errors=(CommandNotSentError,)),
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }
    options.update(parse_url(url))  # what the URL says wins, as in ``BlockingConnectionPool.from_url``
    options["connection_class"] = _UNSENT_ON_FAILURE[options.get("connection_class", Connection)]
    pool = BlockingConnectionPool(**options)
    return Redis(connection_pool=pool) if observe is None else TimedRedis(connection_pool=pool, observe=observe)


async def _unsent_on_failure(sending: Awaitable[None]) -> None:
    """Await a connection's own ``send_packed_command``; its transport failures become ``CommandNotSentError``s."""
    try:
        await sending
    except RedisConnectionError as exc:
        if type(exc) is not RedisConnectionError:  # a server's reply (LOADING, auth) or already marked
            raise
        raise CommandNotSentError(*exc.args) from exc


class _UnsentOnFailure(Connection):
    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        await _unsent_on_failure(super().send_packed_command(command, check_health))


class _SSLUnsentOnFailure(SSLConnection):
    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        await _unsent_on_failure(super().send_packed_command(command, check_health))


class _UnixUnsentOnFailure(UnixDomainSocketConnection):
    async def send_packed_command(self, command: bytes | str | Iterable[bytes], check_health: bool = True) -> None:
        await _unsent_on_failure(super().send_packed_command(command, check_health))


_UNSENT_ON_FAILURE: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: _UnsentOnFailure,
    SSLConnection: _SSLUnsentOnFailure,
    UnixDomainSocketConnection: _UnixUnsentOnFailure,
}


def load_script(redis: Redis, package: str, name: str) -> AsyncScript:
    """Register a ``.lua`` file shipped in ``package``; redis-py runs it with EVALSHA and reloads it when needed."""
    source = resources.files(package).joinpath("lua", name).read_text()
    return redis.register_script(source)
