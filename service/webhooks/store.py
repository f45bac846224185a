"""Webhook deliveries in Redis: the records, their attempt logs, the due schedule and the indexes that list them.

A delivery is created once per request (its id is derived from the request id, ``lua/enqueue.lua``), lives
``GATEWAY_WEBHOOK_RETENTION_SECONDS``, and is due in ``gw:v1:webhook:due`` (sharded) while pending. Each attempt
and the state it leads to are recorded together (``lua/attempt.lua``). Replays keep the delivery's id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, cast

from redis.asyncio import Redis

from service import keys
from service.domain.paging import Cursor
from service.domain.webhooks import Attempt, AttemptResult, DeliveryState
from service.lease_schedule import LeaseSchedule
from service.paging import page_below
from service.redis_client import load_script

MAX_PAGE = 500


@dataclass(slots=True)
class Delivery:
    id: str
    tenant_id: str
    request_id: str
    url: str
    body: str  # the exact JSON delivered and signed
    created_at: float
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    next_at: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None
    replays: int = 0
    sandbox: bool = False  # a sandbox tenant's: its attempts carry x-gateway-sandbox: true
    tenant_uid: str | None = None  # which tenant of that id: one created again under it never sees this delivery
    history: list[Attempt] = field(default_factory=list)  # read on request only, from the attempts LIST

    def to_fields(self) -> dict[str, str]:
        return {
            f.name: json.dumps(getattr(self, f.name))
            for f in fields(self)
            if f.name != "history" and getattr(self, f.name) is not None
        }

    @classmethod
    def from_fields(cls, raw: dict[str, str]) -> Delivery:
        values: dict[str, Any] = {name: json.loads(text) for name, text in raw.items() if name in _FIELDS}
        values["state"] = DeliveryState(values["state"])
        return cls(**values)


_FIELDS = frozenset(f.name for f in fields(Delivery)) - {"history"}


class DeliveryStore:
    def __init__(
        self, redis: Redis, *, retention_seconds: int, shards: int = 1, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._retention = retention_seconds
        self._clock = clock
        self.due = LeaseSchedule(redis, keys.webhook_due_shards(shards), shards_of=keys.webhook_due_shards)
        self._enqueue = load_script(redis, "service.webhooks", "enqueue.lua")
        self._attempt = load_script(redis, "service.webhooks", "attempt.lua")

    async def enqueue(self, delivery: Delivery) -> bool:
        """Create the delivery (once) and make sure it is due and listed; True if this call created it."""
        key = keys.webhook_delivery(delivery.id)
        created = int(await self._enqueue(keys=[key], args=[self._retention, *_flatten(delivery.to_fields())])) == 1
        created_ms = int(delivery.created_at * 1000)
        current = delivery if created else await self.get(delivery.id)
        if current is not None and current.state is DeliveryState.PENDING:
            await self.due.schedule_if_absent(delivery.id, int((current.next_at or 0) * 1000))
        for index in (keys.webhook_index(), keys.tenant_webhooks(delivery.tenant_id)):
            await self._redis.zadd(index, {delivery.id: created_ms}, nx=True)
            await self._redis.zremrangebyscore(index, "-inf", created_ms - self._retention * 1000)
        return created

    async def forget_tenant(self, tenant_id: str) -> None:
        """Drop a deleted tenant's delivery list (the records stay in the operator's log until they expire)."""
        await self._redis.delete(keys.tenant_webhooks(tenant_id))

    async def get(self, delivery_id: str, *, with_history: bool = False) -> Delivery | None:
        raw = cast("dict[str, str]", await self._redis.hgetall(keys.webhook_delivery(delivery_id)))
        if not raw:
            return None
        delivery = Delivery.from_fields(raw)
        if with_history:
            entries = cast("list[str]", await self._redis.lrange(keys.webhook_attempts(delivery_id), 0, -1))
            delivery.history = [_attempt(json.loads(entry)) for entry in entries]
        return delivery

    async def record(self, delivery: Delivery, attempt: Attempt, *, state: DeliveryState, next_at: float | None) -> int:
        """Log one attempt and move the delivery to ``state`` (due again at ``next_at`` if still pending)."""
        values: dict[str, Any] = {
            "state": state.value,
            "next_at": next_at,
            "last_status": attempt.status_code,
            "last_error": attempt.error,
        }
        if state is DeliveryState.DELIVERED:
            values["delivered_at"] = attempt.at
        made = int(
            await self._attempt(
                keys=[keys.webhook_delivery(delivery.id), keys.webhook_attempts(delivery.id)],
                args=[self._retention, json.dumps(asdict(attempt)), *_flatten(_encode(values))],
            )
        )
        if state is DeliveryState.PENDING and next_at is not None:
            await self.due.schedule(delivery.id, int(next_at * 1000))
        else:
            await self.due.finish(delivery.id)
        return made

    async def redeliver(self, delivery_id: str) -> Delivery | None:
        """Queue the delivery again now, with the same id (receivers deduplicate on it)."""
        delivery = await self.get(delivery_id)
        if delivery is None:
            return None
        now = self._clock()
        key = keys.webhook_delivery(delivery_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key, mapping=cast("dict[Any, Any]", _encode({"state": DeliveryState.PENDING.value, "next_at": now}))
            )
            pipe.hincrby(key, "replays", 1)
            pipe.expire(key, self._retention)
            await pipe.execute()
        await self.due.schedule(delivery_id, int(now * 1000))
        return await self.get(delivery_id)

    async def page(
        self, *, tenant_id: str | None, limit: int, before: Cursor | None
    ) -> tuple[list[Delivery], str | None]:
        """Deliveries newest first (one tenant's or everyone's), and the cursor of the next page."""
        size = max(1, min(limit, MAX_PAGE))
        index = keys.tenant_webhooks(tenant_id) if tenant_id else keys.webhook_index()
        entries, cursor = await page_below(self._redis, index, limit=size, before=before)
        records = [await self.get(delivery_id) for delivery_id, _score in entries]
        return [record for record in records if record is not None], cursor

    async def pending_count(self) -> int:
        return await self.due.size()


def _attempt(raw: dict[str, Any]) -> Attempt:
    return Attempt(
        at=raw["at"],
        status_code=raw.get("status_code"),
        latency_ms=raw.get("latency_ms", 0.0),
        error=raw.get("error"),
        result=AttemptResult(raw["result"]),
    )


def _encode(values: dict[str, Any]) -> dict[str, str]:
    return {name: json.dumps(value) for name, value in values.items()}


def _flatten(mapping: dict[str, str]) -> list[str]:
    return [item for pair in mapping.items() for item in pair]
