"""One Redis pub/sub subscriber per process, dispatching each channel's messages to in-process handlers.

Pub/sub is at-most-once and says nothing about what was missed while disconnected, so every consumer also registers
a reset hook, called whenever the subscription is (re)established or lost: waiters re-read, caches drop everything.
``connected`` tells caches whether they may trust themselves at all.

On a Redis Cluster the bus uses sharded pub/sub (``SPUBLISH``/``SSUBSCRIBE``, :mod:`service.sharded_pubsub`): a
message goes to the master of its channel's slot only, not over the cluster bus to every node, and the job events
are split into ``GATEWAY_REDIS_SHARDS`` channels (:class:`JobChannels`) whose slots spread over the masters.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis, RedisCluster

from service import keys
from service.sharded_pubsub import sharded_messages

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class JobChannels:
    """The channels job changes are announced on: a request id goes to the channel of its shard."""

    names: tuple[str, ...] = (keys.job_events_channel(),)

    @classmethod
    def of(cls, shards: int) -> JobChannels:
        return cls(keys.job_event_channels(shards))

    def channel(self, request_id: str) -> str:
        return self.names[keys.shard_index(request_id, len(self.names))]


class EventBus:
    def __init__(
        self,
        redis: Redis,
        *,
        sharded: bool = False,
        on_error: Callable[[str], None] | None = None,
        reconnect_seconds: float = 1.0,
    ) -> None:
        """``on_error`` is called inside ``except`` with an event name for every error the subscription survives
        (the app logs and counts them: :class:`service.background.Survivor`); without it they are logged here.
        ``sharded``: ``redis`` is a cluster client, and every channel is a shard channel."""
        self._redis = redis
        self._sharded = sharded
        self._on_error = on_error
        self._reconnect = reconnect_seconds
        self._handlers: dict[str, list[Callable[[str], None]]] = {}
        self._reset_hooks: list[Callable[[], None]] = []
        self._connected = asyncio.Event()

    @property
    def sharded(self) -> bool:
        """Whether the bus uses sharded pub/sub, which a script cannot publish to outside its own keys' slot."""
        return self._sharded

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def on(self, channel: str, handler: Callable[[str], None]) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    def on_reset(self, hook: Callable[[], None]) -> None:
        self._reset_hooks.append(hook)

    async def publish(self, channel: str, message: str) -> None:
        if self._sharded:
            await self._redis.spublish(channel, message)
        else:
            await self._redis.publish(channel, message)

    async def wait_connected(self, timeout: float) -> bool:  # noqa: ASYNC109 - a deadline for start-up checks
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Subscribe and dispatch until cancelled, reconnecting after Redis errors."""
        while True:
            try:
                async with self._subscription() as messages:
                    self._connected.set()
                    self._reset()
                    async for channel, data in messages:
                        self._dispatch(channel, data)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the subscription must survive anything; logged and counted
                self._survived("event_bus_disconnected")
            finally:
                self._connected.clear()
                self._reset()
            await asyncio.sleep(self._reconnect)

    def _subscription(self) -> AbstractAsyncContextManager[AsyncIterator[tuple[str, str]]]:
        if self._sharded:
            return sharded_messages(cast_cluster(self._redis), list(self._handlers))
        return _messages(self._redis, list(self._handlers))

    def _dispatch(self, channel: str, data: str) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                handler(data)
            except Exception:  # noqa: BLE001 - a bad handler must not stop the others or the subscription
                self._survived("event_handler_failed")

    def _survived(self, event: str) -> None:
        if self._on_error is not None:
            self._on_error(event)
        else:
            log.error(event, exc_info=True)  # noqa: LOG014 - only ever called inside except

    def _reset(self) -> None:
        for hook in self._reset_hooks:
            hook()


@asynccontextmanager
async def _messages(redis: Redis, channels: list[str]) -> AsyncIterator[AsyncIterator[tuple[str, str]]]:
    async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(*channels)

        async def messages() -> AsyncIterator[tuple[str, str]]:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    yield str(message["channel"]), str(message["data"])

        yield messages()


def cast_cluster(redis: Redis) -> RedisCluster:
    """The cluster client behind ``redis`` (typed as ``Redis`` throughout, see ``redis_client.connect_cluster_url``)."""
    client: object = redis
    if not isinstance(client, RedisCluster):
        raise TypeError("sharded pub/sub needs a Redis Cluster client")
    return client
