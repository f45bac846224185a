"""Recording fal's id of an accepted job, whatever Redis does meanwhile: fal has accepted (and will bill) the job, so
its upstream id is never dropped and the client is never told that nothing was sent.

The submitter retries the write until the submit deadline. If Redis is still away then, the id stays in this
process, retried in the background until Redis answers (bounded by a count and an age), and the client is told
the truth: fal accepted the request, the gateway will track it once its state store is back. Once written, the
tracker takes the job from there as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from redis.exceptions import RedisError

from service.background import Survivor
from service.domain.jobs import JobState
from service.errors import GatewayError
from service.jobs.store import JobStore, Rider
from service.metrics import Metrics

log = structlog.get_logger(__name__)
FIRST_RETRY_SECONDS = 0.05
MAX_RETRY_SECONDS = 1.0
MAX_PENDING = 10_000


@dataclass(frozen=True, slots=True)
class Accepted:
    request_id: str
    upstream_id: str
    queue_position: int | None
    accepted_at: float


class UpstreamRecorder:
    def __init__(
        self, store: JobStore, metrics: Metrics, *, keep_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._keep = keep_seconds
        self._clock = clock
        self._pending: dict[str, Accepted] = {}
        self._survivor = Survivor("recorder", metrics)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def record(self, accepted: Accepted, *, within: float, rider: Rider | None = None) -> bool | None:
        """Write the upstream id, retrying through Redis failures for up to ``within`` seconds. True when written,
        False when the job was already completed meanwhile (a cancel, a lost-record failure), None when Redis is
        still unavailable: then the id is kept and written in the background (without ``rider``, whose commands go
        with each attempt made here, in its round trip)."""
        deadline = self._clock() + within
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                return await self._write(accepted, rider)
            except RedisError:
                if self._clock() + delay > deadline:
                    break
                await asyncio.sleep(delay)
                delay = min(MAX_RETRY_SECONDS, delay * 2)
        self._keep_pending(accepted)
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Write the kept ids as soon as Redis answers again; until ``stop``, then one last try."""
        delay = FIRST_RETRY_SECONDS
        while not stop.is_set():
            delay = FIRST_RETRY_SECONDS if await self.flush() else min(MAX_RETRY_SECONDS, delay * 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        await self.flush()

    async def flush(self) -> bool:
        """Try every kept id once. True when nothing is left."""
        for request_id, accepted in list(self._pending.items()):
            if self._clock() - accepted.accepted_at > self._keep:
                del self._pending[request_id]
                log.error("job_record_lost", request_id=request_id, upstream_accepted=True, kept_seconds=self._keep)
                self._metrics.upstream_ids_lost.inc()
                continue
            try:
                written = await self._write(accepted)
            except RedisError:
                return False
            except Exception:  # noqa: BLE001 - keep the id and try again; logged and counted
                self._survivor.survived("job_record_retry_failed")
                return False
            del self._pending[request_id]
            log.info("job_record_recovered", request_id=request_id, written=written)
        self._metrics.upstream_ids_pending.set(len(self._pending))
        return True

    async def write_now(self, request_id: str) -> bool:
        """Write a kept id at once (the tracker asks before giving up on a job stuck submitting). True if written."""
        accepted = self._pending.get(request_id)
        if accepted is None or not await self._write(accepted):
            return False
        del self._pending[request_id]
        self._metrics.upstream_ids_pending.set(len(self._pending))
        log.info("job_record_recovered", request_id=request_id, by="tracker")
        return True

    async def _write(self, accepted: Accepted, rider: Rider | None = None) -> bool:
        return await self._store.update(
            accepted.request_id,
            rider=rider,
            state=JobState.IN_QUEUE,
            upstream_id=accepted.upstream_id,
            queue_position=accepted.queue_position,
        )

    def _keep_pending(self, accepted: Accepted) -> None:
        if len(self._pending) >= MAX_PENDING:
            log.error("job_record_lost", request_id=accepted.request_id, upstream_accepted=True, reason="too_many")
            self._metrics.upstream_ids_lost.inc()
            return
        self._pending[accepted.request_id] = accepted
        self._metrics.upstream_ids_pending.set(len(self._pending))
        log.warning("job_record_deferred", request_id=accepted.request_id, upstream_accepted=True)


class AcceptedNotRecorded(GatewayError):
    """500 ``upstream_accepted_unrecorded``: fal accepted the request, but Redis was away for the whole submit
    deadline, so the gateway could not record it yet. It is kept and tracked once Redis is back (poll its status with
    the request id). A 500, because no official client retries one: a retried submit would be paid twice."""

    status_code = 500
    error_type = "upstream_accepted_unrecorded"

    def __init__(self, request_id: str) -> None:
        super().__init__(
            "fal accepted this request, but the gateway's state store (Redis) is unavailable, so it could not be "
            "recorded yet; the gateway keeps it and tracks it as soon as the store is back: poll its status with "
            "this request id instead of submitting again",
            headers={"x-fal-request-id": request_id},
        )
        self.request_id = request_id

    def body(self) -> Any:
        return {"detail": self.message, "error_type": self.error_type, "request_id": self.request_id}
