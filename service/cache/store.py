"""The result cache and its in-flight markers in Redis (see ``lua/claim.lua``), purged by scope generation.

Every cache key embeds its scope's generation, which each purge bumps (``lua/purge_scope.lua``): the purge is one
atomic step after which older entries are unreachable by construction, although they live in other cluster slots.
A write planned under an older generation is refused (``lua/record.lua``), so no entry outlives a purge unseen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from service import keys
from service.domain.cachekeys import scope_of
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
        self._extend = load_script(redis, "service.cache", "extend.lua")
        self._record = load_script(redis, "service.cache", "record.lua")
        self._purge_scope = load_script(redis, "service.cache", "purge_scope.lua")

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
        await self._extend(keys=[keys.cache_leader(cache_key)], args=[request_id, int(ttl * 1000)])

    async def release(self, cache_key: str, request_id: str) -> None:
        await self._release(keys=[keys.cache_leader(cache_key)], args=[request_id])

    async def generation(self, scope: str) -> int:
        """The scope's current generation (0 until its first purge); cache keys are computed under it."""
        return int(await self._redis.get(keys.cache_scope_generation(scope)) or 0)

    async def put(self, cache_key: str, scope: str, entry: dict[str, Any], ttl: int, generation: int = 0) -> bool:
        """Cache ``entry`` under a key computed under ``generation`` of ``scope``. Writes nothing (and returns False)
        if the scope was purged since: the key is recorded for purges first, and only then is the entry written."""
        recorded = await self._record(
            keys=[keys.cache_scope(scope), keys.cache_scope_generation(scope)], args=[cache_key, generation, ttl]
        )
        if not recorded:
            return False
        await self._redis.set(keys.cache_entry(cache_key), json.dumps(entry), ex=ttl)
        return True

    async def purge(self, cache_key: str) -> bool:
        return bool(await self._redis.delete(keys.cache_entry(cache_key)))

    async def purge_tenant(self, tenant_id: str) -> int:
        """Purge a tenant's own scopes, real and sandbox (entries shared in a namespace are purged through the
        namespace); a fill still in flight is refused too. Returns how many entries existed."""
        return sum([await self.purge_scope(scope_of(tenant_id, None, sandbox=s)) for s in (False, True)])

    async def purge_scope(self, scope: str) -> int:
        """Make every entry of the scope unreachable at once, then delete them. Returns how many existed."""
        cache_keys = cast(
            "list[str]",
            await self._purge_scope(keys=[keys.cache_scope(scope), keys.cache_scope_generation(scope)]),
        )
        removed = 0
        for cache_key in cache_keys:
            removed += int(await self._redis.delete(keys.cache_entry(cache_key)))
        return removed
