"""One Redis pub/sub subscriber per process, dispatching each channel's messages to in-process handlers.

Pub/sub is at-most-once and says nothing about what was missed while disconnected, so every consumer also registers
a reset hook, called whenever the subscription is (re)established or lost: waiters re-read, caches drop everything.
``connected`` tells caches whether they may trust themselves at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from redis.asyncio import Redis

log = structlog.get_logger(__name__)


class EventBus:
    def __init__(
        self, redis: Redis, *, on_error: Callable[[str], None] | None = None, reconnect_seconds: float = 1.0
    ) -> None:
        """``on_error`` is called inside ``except`` with an event name for every error the subscription survives
        (the app logs and counts them: :class:`service.background.Survivor`); without it they are logged here."""
        self._redis = redis
        self._on_error = on_error
        self._reconnect = reconnect_seconds
        self._handlers: dict[str, list[Callable[[str], None]]] = {}
        self._reset_hooks: list[Callable[[], None]] = []
        self._connected = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def on(self, channel: str, handler: Callable[[str], None]) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    def on_reset(self, hook: Callable[[], None]) -> None:
        self._reset_hooks.append(hook)

    async def publish(self, channel: str, message: str) -> None:
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
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(*self._handlers)
                    self._connected.set()
                    self._reset()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._dispatch(str(message["channel"]), str(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the subscription must survive anything; logged and counted
                self._survived("event_bus_disconnected")
            finally:
                self._connected.clear()
                self._reset()
            await asyncio.sleep(self._reconnect)

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
