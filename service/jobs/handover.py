"""``/run`` calls handed over between replicas (docs/protocol.md §15).

A replica that shuts down ends the ``/run`` waits it still holds with a 429 ``replica_shutting_down`` (Retry-After),
which both official clients retry, and notes the request id it hands over. The retry reaches a replica that stays,
which finds the note and waits for that same job instead of submitting it again: one upstream job, one charge.

Per tenant and request (endpoint and every input field with its defaults), a LIST of the request ids handed over,
kept for ``HANDOVER_TTL_SECONDS``; each identical ``/run`` without an ``Idempotency-Key`` takes one (with a key, the
key already answers the retry with the original job).
"""

from __future__ import annotations

import hashlib
import json

import structlog
from redis.asyncio import Redis

from service import keys
from service.domain.jobs import Job
from service.domain.schemas import normalized_input
from service.errors import TooManyRequests
from service.jobs.store import JobStore
from service.jobs.submit import SubmitRequest
from service.tenants.auth import Principal

log = structlog.get_logger(__name__)

HANDOVER_TTL_SECONDS = 60  # the retry comes after Retry-After (1 s) and the clients' own backoff
RETRY_AFTER_SECONDS = 1


def run_fingerprint(submit: SubmitRequest) -> str:
    """What makes a retried ``/run`` the same request as the one handed over."""
    described = {"endpoint": submit.endpoint.id, "input": normalized_input(submit.data)}
    return hashlib.sha256(json.dumps(described, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def shutting_down() -> TooManyRequests:
    """The answer to a ``/run`` on a replica that shuts down: retry, and another replica answers."""
    return TooManyRequests(
        "This gateway replica is shutting down; retry the request and another replica answers it with the same job",
        retry_after=RETRY_AFTER_SECONDS,
        rule="shutdown",
        error_type="replica_shutting_down",
    )


class RunHandovers:
    def __init__(self, redis: Redis, store: JobStore, *, ttl_seconds: int = HANDOVER_TTL_SECONDS) -> None:
        self._redis = redis
        self._store = store
        self._ttl = ttl_seconds

    async def give(self, principal: Principal, submit: SubmitRequest, request_id: str) -> None:
        """Note that the job of ``submit`` is handed over, for the client's retry to find."""
        key = keys.run_handover(principal.tenant_id, run_fingerprint(submit))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, request_id)
            pipe.expire(key, self._ttl)
            await pipe.execute()
        log.info("run_handed_over", request_id=request_id, tenant_id=principal.tenant_id)

    async def take(self, principal: Principal, submit: SubmitRequest) -> Job | None:
        """The job of an identical ``/run`` another replica handed over, if one waits to be taken."""
        key = keys.run_handover(principal.tenant_id, run_fingerprint(submit))
        while (request_id := await self._redis.lpop(key)) is not None:
            job = await self._store.get(str(request_id))
            if (
                job is not None
                and job.tenant_id == principal.tenant_id
                and job.tenant_uid in {None, principal.tenant.uid}
            ):
                log.info("run_handover_taken", original_request_id=job.request_id, tenant_id=principal.tenant_id)
                return job
        return None
