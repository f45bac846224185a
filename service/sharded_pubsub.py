"""Sharded pub/sub on a Redis Cluster: one subscriber connection per master, each subscribed (``SSUBSCRIBE``) to the
channels whose slots that master owns, their messages merged into one stream for :class:`service.events.EventBus`.

A shard channel's messages reach only the master (and replicas) of its slot, so publishing costs one node, not the
whole cluster bus. When a slot moves (resharding, failover) Redis tells the subscriber with an ``sunsubscribe``; that,
or any error on any connection, ends the stream. The bus then resets its consumers (waiters re-read, caches drop)
and subscribes again; the cluster's topology is refreshed first, so the new subscriptions go to the new owners.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import ConnectionPool, RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode

SUBSCRIBER_CONNECTIONS = 2  # the subscribed socket, and one for a health check's reconnect


class SubscriptionLostError(Exception):
    """A shard channel stopped being delivered here (its slot moved, or the connection ended)."""


@contextlib.asynccontextmanager
async def sharded_messages(cluster: RedisCluster, channels: list[str]) -> AsyncIterator[AsyncIterator[tuple[str, str]]]:
    """Subscribe to ``channels`` on their masters; yields an iterator of ``(channel, message)`` that raises when any
    subscription is lost. Everything is closed on exit."""
    try:
        await cluster.initialize()
        by_node: dict[str, tuple[ClusterNode, list[str]]] = {}
        for channel in channels:
            node = cluster.get_node_from_key(channel)
            assert node is not None
            by_node.setdefault(node.name, (node, []))[1].append(channel)
        async with contextlib.AsyncExitStack() as stack:
            inbox: asyncio.Queue[tuple[str, str] | BaseException] = asyncio.Queue()
            readers: list[asyncio.Task[None]] = []
            for node, node_channels in by_node.values():
                pubsub = await stack.enter_async_context(_subscriber(node))
                for channel in node_channels:  # one slot per SSUBSCRIBE (channels of several slots: CROSSSLOT)
                    await pubsub.ssubscribe(channel)
                readers.append(asyncio.create_task(_read(pubsub, inbox)))
            stack.push_async_callback(_stop, readers)  # first on exit: the readers stop before their sockets close
            yield _stream(inbox)
    except Exception:
        with contextlib.suppress(Exception):  # the next subscription must not go to a slot's former owner
            await cluster.nodes_manager.initialize()
        raise


@contextlib.asynccontextmanager
async def _subscriber(node: ClusterNode) -> AsyncIterator[PubSub]:
    pool = ConnectionPool(
        connection_class=node.connection_class, max_connections=SUBSCRIBER_CONNECTIONS, **node.connection_kwargs
    )
    try:
        pubsub = PubSub(pool)
        try:
            yield pubsub
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call] # redis-py's annotation
    finally:
        await pool.aclose()


async def _read(pubsub: PubSub, inbox: asyncio.Queue[tuple[str, str] | BaseException]) -> None:
    try:
        await _deliver(pubsub, inbox)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - handed to the stream's consumer, which survives and resubscribes
        inbox.put_nowait(exc)


async def _deliver(pubsub: PubSub, inbox: asyncio.Queue[tuple[str, str] | BaseException]) -> None:
    async for message in pubsub.listen():
        kind = message.get("type")
        if kind == "smessage":
            inbox.put_nowait((str(message["channel"]), str(message["data"])))
        elif kind == "sunsubscribe":
            raise SubscriptionLostError(f"shard channel {message['channel']!r} moved")
    raise SubscriptionLostError("subscription ended")


async def _stop(readers: list[asyncio.Task[None]]) -> None:
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


async def _stream(inbox: asyncio.Queue[tuple[str, str] | BaseException]) -> AsyncIterator[tuple[str, str]]:
    while True:
        item = await inbox.get()
        if isinstance(item, BaseException):
            raise item
        yield item
