"""The result cache and its in-flight markers in Redis (see ``lua/claim.lua``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from service import keys
from service.redis_client import load_script


@dataclass(frozen=True, slots=True)
class Hit:
    entry: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Follow:
    leader_id: str


@dataclass(frozen=True, slots=True)
class Lead:
    pass


@dataclass(frozen=True, slots=True)
class Miss:
    pass


Claim = Hit | Follow | Lead | Miss


class ResultCache:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._claim = load_script(redis, "service.cache", "claim.lua")
        self._release = load_script(redis, "service.cache", "release.lua")

    async def claim(self, cache_key: str, request_id: str, *, only_if_cached: bool, marker_ttl: float) -> Claim:
        answer = cast(
            "list[str]",
            await self._claim(
                keys=[keys.cache_entry(cache_key), keys.cache_leader(cache_key)],
                args=[request_id, "only" if only_if_cached else "lookup", int(marker_ttl * 1000)],
            ),
        )
        kind = answer[0]
        if kind == "hit":
            return Hit(json.loads(answer[1]))
        if kind == "follow":
            return Follow(answer[1])
        return Miss() if kind == "miss" else Lead()

    async def extend_marker(self, cache_key: str, request_id: str, ttl: float) -> None:
        """Keep the marker for as long as the leader's job may run, once the leader is recorded."""
        if await self._redis.get(keys.cache_leader(cache_key)) == request_id:
            await self._redis.pexpire(keys.cache_leader(cache_key), int(ttl * 1000))

    async def release(self, cache_key: str, request_id: str) -> None:
        await self._release(keys=[keys.cache_leader(cache_key)], args=[request_id])

    async def put(self, cache_key: str, scope: str, entry: dict[str, Any], ttl: int) -> None:
        await self._redis.set(keys.cache_entry(cache_key), json.dumps(entry), ex=ttl)
        await self._redis.sadd(keys.cache_scope(scope), cache_key)
        await self._redis.expire(keys.cache_scope(scope), ttl, gt=True) or await self._redis.expire(
            keys.cache_scope(scope), ttl, nx=True
        )

    async def purge(self, cache_key: str) -> bool:
        return bool(await self._redis.delete(keys.cache_entry(cache_key)))

    async def purge_scope(self, scope: str) -> int:
        cache_keys = cast("set[str]", await self._redis.smembers(keys.cache_scope(scope)))
        removed = 0
        for cache_key in cache_keys:
            removed += int(await self._redis.delete(keys.cache_entry(cache_key)))
        await self._redis.delete(keys.cache_scope(scope))
        return removed
