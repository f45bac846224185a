"""The fault suite's invariants: pure functions over what a run left behind (answers, job records, books, upstream)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ACCEPTED_UNRECORDED = "upstream_accepted_unrecorded"
SUBMIT_UNKNOWN = "upstream_submit_unknown"
UNADMITTED_ROLES = frozenset({"hit", "follower"})  # answered without a submit of their own: no reservation, no slot


@dataclass(frozen=True, slots=True)
class Answer:
    """What one careful client saw for one submit. ``status`` None: no HTTP answer at all; then ``sent`` says whether
    the request may have reached the gateway (False: the connection was refused, so nothing happened)."""

    tenant: str
    status: int | None
    error_type: str | None = None
    request_id: str | None = None
    cache: str | None = None
    sent: bool = True

    @property
    def accepted(self) -> bool:
        """The gateway took the job on: a 200 with a request id, or fal accepted it before Redis went away."""
        return self.request_id is not None and (self.status == 200 or self.error_type == ACCEPTED_UNRECORDED)

    @property
    def outcome_unknown(self) -> bool:
        """Whether the client cannot know if fal got the job: it was sent and never answered, or the gateway said so."""
        return (self.status is None and self.sent) or self.error_type == SUBMIT_UNKNOWN


@dataclass(frozen=True, slots=True)
class JobRecord:
    """The parts of a job record (``gw:v1:job:{rid}``) the invariants read."""

    request_id: str
    tenant: str
    state: str
    settling: bool = False
    outcome: str | None = None
    has_result: bool = False
    error_type: str | None = None
    cache_role: str | None = None
    upstream_id: str | None = None

    @property
    def finished(self) -> bool:
        """COMPLETED and shown so: every side effect of the completion path is booked."""
        return self.state == "COMPLETED" and not self.settling

    @property
    def admitted(self) -> bool:
        """A job that went through admission (and upstream): not a cache hit, not a follower."""
        return self.cache_role not in UNADMITTED_ROLES

    @property
    def succeeded(self) -> bool:
        return self.finished and self.outcome == "ok"


def job_record(request_id: str, fields: Mapping[str, str]) -> JobRecord:
    """A job record from its Redis hash, whose values are JSON-encoded (``Job.to_fields``)."""
    values: dict[str, Any] = {name: json.loads(text) for name, text in fields.items()}
    return JobRecord(
        request_id=request_id,
        tenant=str(values.get("tenant_id")),
        state=str(values.get("state")),
        settling=bool(values.get("settling", False)),
        outcome=values.get("outcome"),
        has_result=values.get("result") is not None,
        error_type=values.get("error_type"),
        cache_role=values.get("cache_role"),
        upstream_id=values.get("upstream_id"),
    )


@dataclass(frozen=True, slots=True)
class Charge:
    request_id: str
    cost_micros: int


@dataclass(frozen=True, slots=True)
class TenantBooks:
    """One tenant as the admin API and its Redis keys show it after the run."""

    history: Mapping[str, str] = field(default_factory=dict)  # request id -> status, GET /admin/tenants/{id}/requests
    charges: Sequence[Charge] = ()  # GET /admin/tenants/{id}/charges, every page
    reserved_micros: int = 0  # GET /admin/tenants/{id}/usage
    spent_micros: int = 0
    reservations: frozenset[str] = frozenset()  # request ids in gw:v1:tenant:{tid}:resv
    inflight: frozenset[str] = frozenset()  # request ids in gw:v1:tenant:{tid}:inflight with an unexpired lease


@dataclass(frozen=True, slots=True)
class Observation:
    answers: Sequence[Answer]
    jobs: Mapping[str, JobRecord]  # every job record found: the tenants' request indexes and every accepted id
    tenants: Mapping[str, TenantBooks]
    upstream_ids: Sequence[str]  # every job the simulator created, over all of its lives
    due: frozenset[str] = frozenset()  # request ids still in the tracker's schedule (gw:v1:tracker:due)


def unsettled(obs: Observation) -> list[str]:
    """What is still moving: unfinished jobs, scheduled jobs, held reservations and slots. Empty once settled."""
    problems = [f"job {job.request_id} is not finished ({job.state})" for job in obs.jobs.values() if not job.finished]
    problems += [f"job {rid} is still in the tracker's schedule" for rid in sorted(obs.due)]
    return problems + hold_violations(obs) + reserved_violations(obs)


def violations(obs: Observation) -> list[str]:
    """Every invariant broken by the run, one line each; empty when the run kept all five."""
    return (
        completion_violations(obs)
        + upstream_violations(obs)
        + ledger_violations(obs)
        + hold_violations(obs)
        + reserved_violations(obs)
    )


def completion_violations(obs: Observation) -> list[str]:
    """1. Every accepted job reaches COMPLETED with a result or an error, and so does every job record there is."""
    problems = [f"a {a.status} answer for {a.tenant} carried no request id" for a in obs.answers if _idless_200(a)]
    ids = Counter(a.request_id for a in obs.answers if a.accepted)
    problems += [f"request id {rid} was answered {n} times" for rid, n in sorted(ids.items(), key=str) if n > 1]
    for answer in obs.answers:
        if not answer.accepted:
            continue
        job = obs.jobs.get(str(answer.request_id))
        if job is None:
            problems.append(f"accepted job {answer.request_id} of {answer.tenant} has no job record")
        elif job.tenant != answer.tenant:
            problems.append(f"accepted job {job.request_id} of {answer.tenant} is recorded for {job.tenant}")
    for job in obs.jobs.values():
        if not job.finished:
            problems.append(f"job {job.request_id} never finished: {job.state}, settling={job.settling}")
        elif job.outcome == "ok" and not job.has_result:
            problems.append(f"job {job.request_id} succeeded without a result")
        elif job.outcome != "ok" and not job.error_type:
            problems.append(f"job {job.request_id} ended ({job.outcome}) with neither a result nor an error")
    for tenant, books in obs.tenants.items():
        mine = {job.request_id for job in obs.jobs.values() if job.tenant == tenant}
        problems += [
            f"job {rid} of {tenant} is missing from the admin history" for rid in sorted(mine - set(books.history))
        ]
        problems += [
            f"the admin history shows job {rid} of {tenant} as {status}"
            for rid, status in sorted(books.history.items())
            if status != "COMPLETED"
        ]
    return problems


def upstream_violations(obs: Observation) -> list[str]:
    """2. Upstream jobs equal the accepted non-cached jobs: nothing submitted twice, nothing accepted lost. The only
    surplus allowed is one upstream job per submit whose outcome the client was told (or left) unknown."""
    created = set(obs.upstream_ids)
    problems = [f"the simulator reports job {uid} twice" for uid, n in Counter(obs.upstream_ids).items() if n > 1]
    recorded = Counter(job.upstream_id for job in obs.jobs.values() if job.upstream_id is not None)
    for uid, n in sorted(recorded.items()):
        if n > 1:
            problems.append(f"upstream job {uid} is recorded by {n} gateway jobs (submitted once, tracked twice)")
        if uid not in created:
            problems.append(f"upstream job {uid} is recorded but the simulator never created it")
    problems += [
        f"{job.cache_role} {job.request_id} has an upstream job of its own ({job.upstream_id})"
        for job in obs.jobs.values()
        if not job.admitted and job.upstream_id is not None
    ]
    problems += [
        f"job {job.request_id} of {job.tenant} was failed as {SUBMIT_UNKNOWN} although fal's id {job.upstream_id} is "
        "recorded: fal runs it and nobody follows it"
        for job in obs.jobs.values()
        if job.upstream_id is not None and job.error_type == SUBMIT_UNKNOWN
    ]
    noncached = accepted_noncached(obs)
    for answer in noncached:
        job = obs.jobs.get(str(answer.request_id))
        if job is not None and job.upstream_id is None:
            problems.append(
                f"accepted job {job.request_id} of {job.tenant} has no upstream id: fal took it, the gateway lost it "
                f"({job.outcome}, {job.error_type})"
            )
    unknown = sum(a.outcome_unknown for a in obs.answers)
    surplus = len(created) - len(noncached)
    if surplus < 0:
        problems.append(f"{len(noncached)} accepted non-cached jobs but only {len(created)} upstream submits")
    elif surplus > unknown:
        problems.append(
            f"{len(created)} upstream submits for {len(noncached)} accepted non-cached jobs: {surplus} more, but only "
            f"{unknown} submits had an unknown outcome (a double submit, or a job fal took that the client was told "
            "failed)"
        )
    return problems


def accepted_noncached(obs: Observation) -> list[Answer]:
    """The accepted answers whose job went upstream itself (its record is not a cache hit or a follower)."""
    return [a for a in obs.answers if a.accepted and _admitted(obs, a)]


def ledger_violations(obs: Observation) -> list[str]:
    """3. Every charge is a completed, successful, non-cached job of its tenant, and every such job is charged once."""
    problems: list[str] = []
    charged: set[str] = set()
    for tenant, books in sorted(obs.tenants.items()):
        counts = Counter(charge.request_id for charge in books.charges)
        for rid, n in sorted(counts.items()):
            charged.add(rid)
            job = obs.jobs.get(rid)
            if n > 1:
                problems.append(f"job {rid} of {tenant} is charged {n} times")
            if job is None:
                problems.append(f"{tenant} is charged for {rid}, which has no job record")
            elif job.tenant != tenant:
                problems.append(f"{tenant} is charged for {rid}, a job of {job.tenant}")
            elif not job.succeeded:
                problems.append(f"{tenant} is charged for {rid}, which did not succeed ({job.outcome})")
            elif not job.admitted:
                problems.append(f"{tenant} is charged for {rid}, a cache {job.cache_role}")
        total = sum(charge.cost_micros for charge in books.charges)
        if total != books.spent_micros:
            problems.append(f"the ledger of {tenant} sums to {total} micros, but its usage says {books.spent_micros}")
    problems += [
        f"job {job.request_id} of {job.tenant} succeeded upstream but was never charged"
        for job in obs.jobs.values()
        if job.succeeded and job.admitted and job.request_id not in charged
    ]
    return problems


def hold_violations(obs: Observation) -> list[str]:
    """4. No reservation and no concurrency slot without a live (unfinished) job."""
    problems: list[str] = []
    for tenant, books in sorted(obs.tenants.items()):
        for what, ids in (("a reservation", books.reservations), ("a concurrency slot", books.inflight)):
            for rid in sorted(ids):
                job = obs.jobs.get(rid)
                if job is None or job.finished:
                    state = "no job record" if job is None else "a finished job"
                    problems.append(f"{tenant} holds {what} for {rid}, which has {state}")
    return problems


def reserved_violations(obs: Observation) -> list[str]:
    """5. Nothing is reserved once no job runs."""
    return [
        f"{tenant} still has {books.reserved_micros} micros reserved"
        for tenant, books in sorted(obs.tenants.items())
        if books.reserved_micros != 0
    ]


def _idless_200(answer: Answer) -> bool:
    return answer.status == 200 and answer.request_id is None


def _admitted(obs: Observation, answer: Answer) -> bool:
    """Whether an accepted job went upstream itself; its record says, else the cache header the client saw."""
    job = obs.jobs.get(str(answer.request_id))
    if job is not None:
        return job.admitted
    return answer.cache not in {"hit", "merged"}
