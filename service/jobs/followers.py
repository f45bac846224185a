"""Single-flight bookkeeping: which requests share a leader's upstream job, and how a follower is shown.

A *follower* is an identical request that attached to an in-flight *leader* instead of being submitted (the claim
itself is ``service/cache/lua/claim.lua``). It makes no upstream call, pays nothing, and ends with its leader's
outcome under its own request id; the completion path (``completion.py``) completes followers after their leader.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from service.domain.jobs import Job
from service.jobs.store import JobStore

# The parts of a leader's outcome a follower takes over; its id, tenant, webhook and everything else stay its own.
OUTCOME_FIELDS = (
    "outcome",
    "result",
    "error",
    "error_type",
    "error_status",
    "error_body",
    "error_timeout_type",
    "inference_time",
    "logs",
)


class Followers:
    def __init__(self, store: JobStore) -> None:
        self._store = store

    async def attach(self, follower: Job) -> Job | None:
        """Register a follower with its leader. Returns the leader if it has already finished (the caller then
        completes the follower at once), else None."""
        assert follower.leader_id is not None
        await self._store.add_follower(follower.leader_id, follower.request_id)
        leader = await self._store.get(follower.leader_id)
        return leader if leader is not None and leader.done else None

    async def of(self, leader_id: str) -> list[Job]:
        """The follower records of a leader that still exist, in a stable order."""
        records = [await self._store.get(follower_id) for follower_id in await self._store.followers(leader_id)]
        return [job for job in records if job is not None]

    async def any_live(self, leader: Job) -> bool:
        return any(not follower.done for follower in await self.of(leader.request_id))


def outcome_of(leader: Job) -> dict[str, Any]:
    """The completion fields a follower copies from its finished leader."""
    return {name: getattr(leader, name) for name in OUTCOME_FIELDS}


def merged(follower: Job, leader: Job | None) -> Job:
    """What a follower's client sees while its leader runs: the leader's progress under the follower's identity."""
    if leader is None or follower.done:
        return follower
    return replace(
        leader,
        request_id=follower.request_id,
        tenant_id=follower.tenant_id,
        tenant_uid=follower.tenant_uid,
        mode=follower.mode,
        created_at=follower.created_at,
        webhook_url=follower.webhook_url,
        cache_role=follower.cache_role,
        leader_id=leader.request_id,
        cache_key=follower.cache_key,
        estimate_micros=0,
        upstream_id=None,
    )
