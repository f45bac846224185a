"""Job records in Redis (``gw:v1:job:{<rid>}``) and the tracker's due schedule (``gw:v1:tracker:due``, sharded)."""

from __future__ import annotations

from typing import Any, Protocol, cast

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError, RedisError

from service import keys
from service.domain.jobs import Job, JobState, encode_fields
from service.domain.paging import Cursor
from service.events import EventBus, JobChannels
from service.lease_schedule import LeaseSchedule
from service.paging import page_below
from service.redis_client import load_script

_LUA = "service.jobs"
log = structlog.get_logger(__name__)


class Rider(Protocol):
    """Commands that ride along with a write in its round trip, run after it (``JobStore.update(rider=...)``). They
    may run again with the write (a Redis that lost the script), so each must be idempotent."""

    def queue(self, pipe: Pipeline) -> None:
        """Queue the commands on ``pipe``, after the write."""

    def replies(self, replies: list[Any]) -> None:
        """Their replies, in order; a failed command's is its exception (the write stands either way)."""


class JobStore:
    """Reads and writes job records. State only moves forward: COMPLETED is final and reached exactly once."""

    def __init__(
        self,
        redis: Redis,
        *,
        retention_seconds: int,
        channels: JobChannels | None = None,
        bus: EventBus | None = None,
    ) -> None:
        """``channels``: where changes are announced (default: the one channel). The write's script publishes
        them, unless ``bus`` uses sharded pub/sub: then the bus does, after the write."""
        self._redis = redis
        self._retention = retention_seconds
        self._channels = channels or JobChannels()
        self._bus = bus if bus is not None and bus.sharded else None
        self._write = load_script(redis, _LUA, "job_write.lua")
        self._complete = load_script(redis, _LUA, "job_complete.lua")
        self._reveal = load_script(redis, _LUA, "job_reveal.lua")

    def pipeline(self) -> Pipeline:
        """A non-transactional pipeline: several components' writes in one round trip, executed in order."""
        return self._redis.pipeline(transaction=False)

    async def create(self, job: Job) -> None:
        async with self.pipeline() as pipe:
            self.create_in(pipe, job)
            await pipe.execute()

    def create_in(self, pipe: Pipeline, job: Job) -> None:
        """Queue the record's writes on ``pipe``: the record, its expiry, and the tenant's history index (which lives
        in the tenant's slot). Redis runs them back to back; a record whose expiry was lost with a dying process is
        still found through its schedule entry and given its expiry when it completes."""
        key = keys.job(job.request_id)
        pipe.hset(key, mapping=cast("dict[Any, Any]", job.to_fields()))
        # Unfinished jobs keep the full retention too, so a job no tracker ever reaches cannot live forever.
        pipe.expire(key, self._retention)
        history = keys.tenant_requests(job.tenant_id)
        created_ms = int(job.created_at * 1000)
        pipe.zadd(history, {job.request_id: created_ms})
        pipe.zremrangebyscore(history, "-inf", created_ms - self._retention * 1000)
        pipe.expire(history, self._retention)

    async def add_follower(self, leader_id: str, follower_id: str) -> None:
        """Record that ``follower_id`` shares ``leader_id``'s upstream job (kept as long as job records are)."""
        await self._redis.sadd(keys.job_followers(leader_id), follower_id)
        await self._redis.expire(keys.job_followers(leader_id), self._retention)

    async def followers(self, leader_id: str) -> list[str]:
        return sorted(cast("set[str]", await self._redis.smembers(keys.job_followers(leader_id))))

    async def history(self, tenant_id: str, *, limit: int, before: Cursor | None) -> tuple[list[Job], str | None]:
        """One page of the tenant's requests, newest first, that still exist (records expire on their own), and the
        cursor of the next page."""
        rows, cursor = await page_below(self._redis, keys.tenant_requests(tenant_id), limit=limit, before=before)
        jobs = [await self.get(rid) for rid, _score in rows]
        return [job for job in jobs if job is not None], cursor

    async def get(self, request_id: str) -> Job | None:
        return self.job_of(await self._redis.hgetall(keys.job(request_id)))

    def get_in(self, pipe: Pipeline, request_id: str) -> None:
        """``get`` queued on ``pipe``; :meth:`job_of` reads its reply."""
        pipe.hgetall(keys.job(request_id))

    @staticmethod
    def job_of(reply: Any) -> Job | None:
        raw = cast("dict[str, str]", reply)
        return Job.from_fields(raw) if raw else None

    async def update(self, request_id: str, *, rider: Rider | None = None, **values: Any) -> bool:
        """Apply ``values`` unless the job is already COMPLETED. Returns whether it was applied. ``rider``: commands
        sent in the same round trip, after the write (whatever it returned)."""
        return await self._write_fields(request_id, 0, values, rider)

    async def complete(
        self,
        request_id: str,
        values: dict[str, Any],
        outbox: dict[str, str] | None = None,
        *,
        unless_set: str | None = None,
    ) -> int:
        """Mark the job COMPLETED with ``values`` and write ``outbox`` in the same atomic step (``job_complete.lua``).
        The job stays ``settling`` (shown to clients as running) until :meth:`reveal`.

        Returns 1 for the one call that made the transition, 0 if the job was already COMPLETED, -1 if there is no
        record, -2 if the field ``unless_set`` is set (nothing changed). Only
        :class:`service.jobs.completion.Completion` calls this."""
        entries = outbox or {}
        args: list[str | int] = [
            unless_set or "",
            self._retention,
            len(entries),
            *_flatten(entries),
            *_flatten(encode_fields({**values, "state": JobState.COMPLETED, "settling": True})),
        ]
        return int(await self._complete(keys=[keys.job(request_id), keys.job_outbox(request_id)], args=args))

    async def reveal(self, request_id: str) -> None:
        """Show a completed job to its clients (it was ``settling``) and announce the change to every replica."""
        await self._reveal(keys=[keys.job(request_id)], args=[self._script_channel(request_id), request_id])
        await self._announce(request_id)

    async def outbox(self, request_id: str) -> dict[str, str]:
        """Outbox entries of a completed job not yet dispatched."""
        return cast("dict[str, str]", await self._redis.hgetall(keys.job_outbox(request_id)))

    async def clear_outbox(self, request_id: str, name: str) -> None:
        await self._redis.hdel(keys.job_outbox(request_id), name)

    async def _write_fields(
        self, request_id: str, expire_seconds: int, values: dict[str, Any], rider: Rider | None = None
    ) -> bool:
        args: list[str | int] = [
            self._script_channel(request_id),
            request_id,
            expire_seconds,
            *_flatten(encode_fields(values)),
        ]
        if rider is None:
            written = int(await self._write(keys=[keys.job(request_id)], args=args)) == 1
        else:
            written = await self._write_with(keys.job(request_id), args, rider)
        if written:
            await self._announce(request_id)
        return written

    async def _write_with(self, key: str, args: list[str | int], rider: Rider) -> bool:
        """The write as a bare EVALSHA followed by the rider's commands, in one pipeline (the reason and the raw
        command as in ``Admission.confirm_in``). A Redis that lost the script answers NOSCRIPT: the script is loaded
        and the pipeline run again. An error of the write itself is raised; the rider's are its own to judge."""
        for attempt in (1, 2):
            async with self.pipeline() as pipe:
                pipe.execute_command("EVALSHA", self._write.sha, 1, key, *args)
                rider.queue(pipe)
                replies = await pipe.execute(raise_on_error=False)
            if attempt == 2 or not isinstance(replies[0], NoScriptError):
                break
            await self._redis.script_load(self._write.script)
        if isinstance(replies[0], Exception):
            raise replies[0]
        rider.replies(replies[1:])
        return int(replies[0]) == 1

    def _script_channel(self, request_id: str) -> str:
        """The channel the write's script publishes on; none ("") with sharded pub/sub, which a script can only
        use in its own keys' slot: :meth:`_announce` publishes then, after the write."""
        return "" if self._bus is not None else self._channels.channel(request_id)

    async def _announce(self, request_id: str) -> None:
        if self._bus is None:
            return
        try:
            await self._bus.publish(self._channels.channel(request_id), request_id)
        except RedisError:  # the write stands: waiters re-read on their fallback interval (jobs/events.py)
            log.warning("job_event_not_published", request_id=request_id, exc_info=True)


class DueSchedule(LeaseSchedule):
    """When each unfinished job is next due for an upstream poll (``gw:v1:tracker:due``), claimed as leases."""

    def __init__(self, redis: Redis, *, shards: int = 1) -> None:
        super().__init__(redis, keys.tracker_due_shards(shards), shards_of=keys.tracker_due_shards)


class ScheduleAndRead:
    """A :class:`Rider`: schedule the job's next poll (``failed`` if that failed) and read its record back
    (``current``: None if it is gone or the read failed)."""

    def __init__(self, store: JobStore, due: DueSchedule, request_id: str, at_ms: int) -> None:
        self._store, self._due, self._request_id, self._at_ms = store, due, request_id, at_ms
        self.current: Job | None = None
        self.failed = False

    def queue(self, pipe: Pipeline) -> None:
        self._due.schedule_in(pipe, self._request_id, self._at_ms)
        self._store.get_in(pipe, self._request_id)

    def replies(self, replies: list[Any]) -> None:
        scheduled, record = replies
        self.failed = isinstance(scheduled, Exception)
        self.current = None if isinstance(record, Exception) else self._store.job_of(record)


def _flatten(mapping: dict[str, str]) -> list[str]:
    return [item for pair in mapping.items() for item in pair]
