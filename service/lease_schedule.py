"""Lease schedules: Redis ZSETs of ids scored by when each is next due, claimed as leases (``lua/lease_claim.lua``).

The tracker's due jobs and the webhook deliveries are both one. Claiming an entry re-scores it to "now + lease", so
work whose replica dies becomes due again when the lease runs out, and another replica takes it over.

A schedule is split into shards (``GATEWAY_REDIS_SHARDS``), one ZSET each, hash-tagged so that on a Redis Cluster
they spread over the masters (``service.keys``); an id always lives in the shard of its crc32. Each claim takes a
window of shards at once, the window moving on with every claim, so every shard is served in turn and no claim takes
more than it was asked for. Entries left in the shards of another shard count (the one-key schedule of older
versions, or a count since changed) are moved into this count's shards by :meth:`LeaseSchedule.adopt_strays`,
which the workers call every few seconds: a change of shard count loses no work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import NamedTuple, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from service import keys
from service.redis_client import load_script

STRAY_BATCH = 500


class Claim(NamedTuple):
    """One claimed entry: its id, when it was due (its score before the claim) and the lease score the claim gave
    it. The claimer holds the entry for as long as its score is still ``lease_until_ms``."""

    member: str
    due_ms: int
    lease_until_ms: int


class PartialClaimError(Exception):
    """Some shards could not be claimed from; ``claims`` are those the others gave, leased and to be handled."""

    def __init__(self, claims: list[Claim], error: BaseException) -> None:
        super().__init__(f"{len(claims)} claimed, a shard failed: {error!r}")
        self.claims = claims
        self.error = error


class LeaseSchedule:
    def __init__(
        self,
        redis: Redis,
        shard_keys: str | Sequence[str],
        *,
        shards_of: Callable[[int], tuple[str, ...]] | None = None,
    ) -> None:
        """``shard_keys``: the ZSET of each shard (one key: not sharded). ``shards_of`` gives the shard keys of any
        other count, so that :meth:`adopt_strays` finds what replicas with another count left behind."""
        self._redis = redis
        self._keys = (shard_keys,) if isinstance(shard_keys, str) else tuple(shard_keys)
        self._shards_of = shards_of
        self._window_start = 0
        self._claim = load_script(redis, "service", "lease_claim.lua")
        self._release = load_script(redis, "service", "lease_release.lua")

    @property
    def shard_keys(self) -> tuple[str, ...]:
        return self._keys

    def key_of(self, member: str) -> str:
        return self._keys[keys.shard_index(member, len(self._keys))]

    async def schedule(self, member: str, at_ms: int) -> None:
        await self._redis.zadd(self.key_of(member), {member: at_ms})

    async def schedule_if_absent(self, member: str, at_ms: int) -> None:
        await self._redis.zadd(self.key_of(member), {member: at_ms}, nx=True)

    def schedule_in(self, pipe: Pipeline, member: str, at_ms: int) -> None:
        pipe.zadd(self.key_of(member), {member: at_ms})

    async def due_at(self, member: str) -> int | None:
        """The member's score (its due time, or its lease while claimed); None when it is not scheduled."""
        score = await self._redis.zscore(self.key_of(member), member)
        return None if score is None else int(score)

    async def claim(self, now_ms: int, *, lease_ms: int, limit: int) -> list[Claim]:
        """Up to ``limit`` entries due by ``now_ms``, each now leased until ``now_ms + lease_ms``, in due order.

        Raises :class:`PartialClaimError` with what was claimed when some, not all, shards fail."""
        width = max(1, min(len(self._keys), limit))
        start, self._window_start = self._window_start, (self._window_start + width) % len(self._keys)
        window = [self._keys[(start + i) % len(self._keys)] for i in range(width)]
        each = max(1, limit // width)
        results = await asyncio.gather(
            *(self._claim(keys=[key], args=[now_ms, lease_ms, each]) for key in window), return_exceptions=True
        )
        lease_until = now_ms + lease_ms
        claims: list[Claim] = []
        errors: list[BaseException] = []
        for flat in results:
            if isinstance(flat, BaseException):
                errors.append(flat)
                continue
            claims.extend(Claim(flat[i], int(float(flat[i + 1])), lease_until) for i in range(0, len(flat), 2))
        claims.sort(key=lambda claim: claim.due_ms)
        if errors and not claims:
            raise errors[0]
        if errors:
            raise PartialClaimError(claims, errors[0])
        return claims

    async def release(self, claims: Sequence[Claim], now_ms: int) -> int:
        """Make each claimed entry due at ``now_ms`` again, where it still carries its claim's lease score: never one
        that another replica claimed after the lease ran out, nor one its own handling rescheduled. Returns how many
        were given back."""
        by_key: dict[str, list[str | int]] = {}
        for claim in claims:
            by_key.setdefault(self.key_of(claim.member), []).extend((claim.member, claim.lease_until_ms))
        released = await asyncio.gather(
            *(self._release(keys=[key], args=[now_ms, *pairs]) for key, pairs in by_key.items())
        )
        return sum(int(count) for count in released)

    async def finish(self, member: str) -> None:
        await self._redis.zrem(self.key_of(member), member)

    async def size(self) -> int:
        sizes = await asyncio.gather(*(self._redis.zcard(key) for key in self._keys))
        return sum(int(size) for size in sizes)

    async def oldest_ms(self) -> int | None:
        """The earliest due time scheduled, or None when nothing is."""
        firsts = await asyncio.gather(*(self._redis.zrange(key, 0, 0, withscores=True) for key in self._keys))
        scores = [int(first[0][1]) for first in firsts if first]
        return min(scores) if scores else None

    async def members(self, shard: int, start: int, count: int) -> list[str]:
        """A page of one shard's members, in due order (for a census)."""
        return cast("list[str]", await self._redis.zrange(self._keys[shard], start, start + count - 1))

    async def adopt_strays(self) -> int:
        """Move into this schedule's shards up to ``STRAY_BATCH`` entries per stray key: the keys of every other
        shard count a replica has recorded (``gw:v1:shards``). Keeps the earlier due time where an id is in both.
        Returns how many were moved. Not atomic across shards: an id interrupted mid-move is in both for a while,
        and handled twice at worst, which every handler allows (a step reads the record first)."""
        record = keys.shard_count_record()
        await self._redis.sadd(record, len(self._keys))
        counts = {int(count) for count in cast("set[str]", await self._redis.smembers(record))}
        strays = {key for count in counts | {1} for key in self._keys_of(count)} - set(self._keys)
        moved = 0
        for stray in sorted(strays):
            entries = cast(
                "list[tuple[str, float]]", await self._redis.zrange(stray, 0, STRAY_BATCH - 1, withscores=True)
            )
            for member, score in entries:
                await self._redis.zadd(self.key_of(member), {member: int(score)}, lt=True)
                await self._redis.zrem(stray, member)
            moved += len(entries)
        return moved

    def _keys_of(self, count: int) -> tuple[str, ...]:
        if self._shards_of is None:
            return self._keys if count == len(self._keys) else ()
        return self._shards_of(count)
