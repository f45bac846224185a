"""The one completion path: every way a job ends goes through :meth:`Completion.complete` (docs/architecture.md).

The transition to COMPLETED happens exactly once, in one Lua script (``lua/job_complete.lua``) that also writes the
job's outbox: what each registered :class:`CompletionHook` (webhook delivery) must do after it. The job is then
COMPLETED but still ``settling``, shown to clients as running, while the call that made the transition runs the side
effects in one fixed order:

1. budget: settle a success, release the reservation of anything else;
2. cache: fill it with a success of a leader (or bypass request), drop the in-flight marker;
3. followers: complete every request merged into this one, through this same path, with its outcome;
4. concurrency: free the tenant's slot;
5. metric: count ``gateway_jobs_completed_total`` once;
6. publish: show the job to its clients and announce the change to every replica's waiters;
7. hooks: dispatch each outbox entry, then clear it;
8. schedule: drop the job from the tracker's due set.

So whoever sees a job COMPLETED also sees it charged, cached, its followers done and its slot free. Every step is
idempotent, and the due-set entry dropped last is the recovery trigger: if this replica dies anywhere before step 8,
the tracker finds a COMPLETED job still scheduled and calls :meth:`Completion.resume`, which repeats the steps
(without counting the metric again) and dispatches what is left in the outbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

import structlog

from service.budgets.ledger import BudgetLedger
from service.cache.service import CacheService
from service.domain.jobs import Job, JobState, Outcome
from service.jobs.followers import Followers, outcome_of
from service.jobs.store import DueSchedule, JobStore
from service.metrics import Metrics
from service.tenants.admission import Admission

GUARDED = -2  # JobStore.complete: the guard field was set, nothing changed
log = structlog.get_logger(__name__)
UNADMITTED_ROLES = frozenset({"hit", "follower"})


class CompletionHook(Protocol):
    """Work that must follow a job's completion exactly once in effect (at least once, deduplicated by payload)."""

    name: str

    def outbox(self, job: Job) -> str | None:
        """What to record atomically with the transition of ``job`` (already COMPLETED here), or None for nothing.
        Built before the transition is tried, so a racer that loses builds one that is never recorded."""

    async def dispatch(self, job: Job, payload: str) -> None:
        """Act on a recorded payload. Called after the transition, and again after a crash until it returns."""


class Completion:
    def __init__(  # noqa: PLR0913 - every side effect's owner, all explicit
        self,
        *,
        store: JobStore,
        due: DueSchedule,
        admission: Admission,
        ledger: BudgetLedger,
        cache: CacheService,
        followers: Followers,
        metrics: Metrics,
        hooks: Sequence[CompletionHook] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._due = due
        self._admission = admission
        self._ledger = ledger
        self._cache = cache
        self._followers = followers
        self._metrics = metrics
        self._hooks = {hook.name: hook for hook in hooks}
        self._clock = clock

    async def complete(self, job: Job, *, unless_submitted: bool = False, **values: Any) -> bool:
        """Complete ``job`` with ``values`` (``outcome`` and its result or error fields). True only for the call that
        made the transition. A job without a record (it was never written, or is gone) still gives back what it
        holds, so nothing it reserved outlives it; one already COMPLETED is left to whoever completed it.
        ``unless_submitted``: only while the record has no upstream id (a stalled submit whose id has been written
        meanwhile is tracked, not failed); False and nothing done otherwise."""
        values.setdefault("completed_at", self._clock())
        final = replace(job, **values, state=JobState.COMPLETED)
        outbox = {name: payload for name, hook in self._hooks.items() if (payload := hook.outbox(final)) is not None}
        guard = "upstream_id" if unless_submitted else None
        made = await self._store.complete(job.request_id, values, outbox, unless_set=guard)
        if made in (0, GUARDED):
            return False
        if made < 0:
            log.warning("job_record_missing_at_completion", request_id=job.request_id)
            outbox = {}
        await self._after(final, outbox, count=made > 0)
        return made > 0

    async def resume(self, job: Job) -> None:
        """Repeat the side effects of a completed job whose completing replica may have died half-way."""
        outbox = await self._store.outbox(job.request_id) if self._hooks else {}
        await self._after(job, outbox, count=False)

    async def _after(self, job: Job, outbox: dict[str, str], *, count: bool) -> None:
        admitted = job.cache_role not in UNADMITTED_ROLES  # hits and followers reserve nothing and hold no slot
        if admitted:
            await self._ledger.finish(job)
        await self._cache.finish(job)
        if job.cache_role == "leader":  # only a leader's in-flight marker lets others attach
            for follower in await self._followers.of(job.request_id):
                await self.complete(follower, **outcome_of(job))
        if admitted:
            await self._admission.release(job.tenant_id, job.request_id)
        if count:
            outcome = (job.outcome or Outcome.ERROR).value
            completed = self._metrics.sandbox_jobs_completed if job.sandbox else self._metrics.jobs_completed
            completed.labels(endpoint=job.endpoint_id, outcome=outcome).inc()
            log.info("job_completed", outcome=outcome, error_type=job.error_type, tenant_id=job.tenant_id)
        await self._store.reveal(job.request_id)
        for name, payload in outbox.items():
            hook = self._hooks.get(name)
            if hook is not None:
                await hook.dispatch(job, payload)
            await self._store.clear_outbox(job.request_id, name)
        await self._due.finish(job.request_id)
