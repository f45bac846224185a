"""Idempotency keys on submit and run (``Idempotency-Key``): a retried request is answered with the original job.

Per tenant, for ``IDEMPOTENCY_TTL_SECONDS``: the first request with a key owns it (``lua/idempotency_claim.lua``);
the same key with the same request (endpoint, mode, every input field with its defaults, webhook) is answered with
the first request's id and job, without a second submit or charge, also when both arrive at once on two replicas;
the same key with a different request is a 422. A request refused before it became a job gives its key back. A key
is the tenant's own: a tenant created again under a deleted one's id never replays the old tenant's requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from service import keys
from service.domain.jobs import Job
from service.errors import InvalidRequest
from service.jobs.store import JobStore
from service.redis_client import load_script

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255
WAIT_FOR_RECORD_SECONDS = 5.0  # how long a duplicate waits for the first request's job record to appear


@dataclass(frozen=True, slots=True)
class Duplicate:
    request_id: str


def fingerprint(job: Job) -> str:
    """What makes two requests "the same request" for an idempotency key."""
    described = {"endpoint": job.endpoint_id, "mode": job.mode.value, "input": job.input, "webhook": job.webhook_url}
    return hashlib.sha256(json.dumps(described, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def checked_key(header: str | None) -> str | None:
    """The ``Idempotency-Key`` header, or None; a key that is empty, too long or not printable is a 422."""
    if header is None:
        return None
    key = header.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequest(
            [
                {
                    "type": "value_error",
                    "loc": ["header", "Idempotency-Key"],
                    "msg": f"must be 1 to {MAX_KEY_LENGTH} printable characters",
                }
            ]
        )
    return key


class IdempotencyKeys:
    def __init__(self, redis: Redis, store: JobStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        self._claim = load_script(redis, "service.jobs", "idempotency_claim.lua")
        self._release = load_script(redis, "service.jobs", "idempotency_release.lua")

    async def claim(self, key: str, job: Job) -> Duplicate | None:
        """None: this request owns the key and goes on. A Duplicate names the original request. 422 on a conflict."""
        answer = cast(
            "list[str]",
            await self._claim(
                keys=[_key(job.tenant_id, key)],
                args=[fingerprint(job), job.request_id, IDEMPOTENCY_TTL_SECONDS, job.tenant_uid or ""],
            ),
        )
        if answer[0] == "new":
            return None
        if answer[0] == "same":
            return Duplicate(answer[1])
        raise InvalidRequest(
            [
                {
                    "type": "idempotency_conflict",
                    "loc": ["header", "Idempotency-Key"],
                    "msg": "This Idempotency-Key was used for a different request in the last 24 hours",
                }
            ]
        )

    async def original(self, duplicate: Duplicate) -> Job | None:
        """The original request's job, waiting briefly for a request still being recorded on another replica."""
        deadline = self._clock() + WAIT_FOR_RECORD_SECONDS
        delay = 0.01
        while (job := await self._store.get(duplicate.request_id)) is None and self._clock() < deadline:
            await asyncio.sleep(delay)
            delay = min(0.2, delay * 2)
        return job

    async def release(self, key: str, job: Job) -> None:
        await self._release(keys=[_key(job.tenant_id, key)], args=[job.request_id])


def _key(tenant_id: str, key: str) -> str:
    return keys.idempotency(tenant_id, hashlib.sha256(key.encode()).hexdigest())
