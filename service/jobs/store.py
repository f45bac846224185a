"""Job records in Redis (``gw:v1:job:{<rid>}``) and the tracker's due schedule (``gw:v1:tracker:due``)."""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis

from service import keys
from service.domain.jobs import Job, JobState, encode_fields
from service.redis_client import load_script

_LUA = "service.jobs"


class JobStore:
    """Reads and writes job records. State only moves forward: COMPLETED is final and reached exactly once."""

    def __init__(self, redis: Redis, *, retention_seconds: int) -> None:
        self._redis = redis
        self._retention = retention_seconds
        self._write = load_script(redis, _LUA, "job_write.lua")

    async def create(self, job: Job) -> None:
        key = keys.job(job.request_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast("dict[Any, Any]", job.to_fields()))
            # Unfinished jobs keep the full retention too, so a job no tracker ever reaches cannot live forever.
            pipe.expire(key, self._retention)
            await pipe.execute()
        # The tenant's history index lives in the tenant's slot, so it is a separate (non-transactional) write.
        history = keys.tenant_requests(job.tenant_id)
        created_ms = int(job.created_at * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(history, {job.request_id: created_ms})
            pipe.zremrangebyscore(history, "-inf", created_ms - self._retention * 1000)
            pipe.expire(history, self._retention)
            await pipe.execute()

    async def add_follower(self, leader_id: str, follower_id: str) -> None:
        """Record that ``follower_id`` shares ``leader_id``'s upstream job (kept as long as job records are)."""
        await self._redis.sadd(keys.job_followers(leader_id), follower_id)
        await self._redis.expire(keys.job_followers(leader_id), self._retention)

    async def followers(self, leader_id: str) -> list[str]:
        return sorted(cast("set[str]", await self._redis.smembers(keys.job_followers(leader_id))))

    async def history(self, tenant_id: str, *, limit: int, before_ms: int | None) -> list[Job]:
        """The tenant's requests, newest first, that still exist (records expire on their own)."""
        upper = f"({before_ms}" if before_ms is not None else "+inf"
        ids = cast(
            "list[str]",
            await self._redis.zrevrangebyscore(keys.tenant_requests(tenant_id), upper, "-inf", start=0, num=limit),
        )
        jobs = [await self.get(rid) for rid in ids]
        return [job for job in jobs if job is not None]

    async def get(self, request_id: str) -> Job | None:
        raw = cast("dict[str, str]", await self._redis.hgetall(keys.job(request_id)))
        return Job.from_fields(raw) if raw else None

    async def update(self, request_id: str, **values: Any) -> bool:
        """Apply ``values`` unless the job is already COMPLETED. Returns whether it was applied."""
        return await self._write_fields(request_id, 0, values)

    async def complete(self, request_id: str, **values: Any) -> bool:
        """Mark the job COMPLETED with ``values``. True only for the one call that made the transition."""
        values["state"] = JobState.COMPLETED
        return await self._write_fields(request_id, self._retention, values)

    async def _write_fields(self, request_id: str, expire_seconds: int, values: dict[str, Any]) -> bool:
        args: list[str | int] = [
            keys.job_events_channel(),
            request_id,
            expire_seconds,
            *_flatten(encode_fields(values)),
        ]
        return int(await self._write(keys=[keys.job(request_id)], args=args)) == 1


class DueSchedule:
    """When each unfinished job is next due for an upstream poll. Claims are leases (see ``tracker_claim.lua``)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._claim = load_script(redis, _LUA, "tracker_claim.lua")

    async def schedule(self, request_id: str, at_ms: int) -> None:
        await self._redis.zadd(keys.tracker_due(), {request_id: at_ms})

    async def claim(self, now_ms: int, *, lease_ms: int, limit: int) -> list[str]:
        claimed: list[str] = await self._claim(keys=[keys.tracker_due()], args=[now_ms, lease_ms, limit])
        return claimed

    async def finish(self, request_id: str) -> None:
        await self._redis.zrem(keys.tracker_due(), request_id)

    async def size(self) -> int:
        return int(await self._redis.zcard(keys.tracker_due()))


def _flatten(mapping: dict[str, str]) -> list[str]:
    return [item for pair in mapping.items() for item in pair]
