"""The invariant checker of tests.support.faults on hand-made runs: quiet on a clean one, loud on each breach."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from tests.support.faults import (
    ACCEPTED_UNRECORDED,
    SUBMIT_UNKNOWN,
    Answer,
    Charge,
    JobRecord,
    Observation,
    TenantBooks,
    job_record,
    unsettled,
    violations,
)


def _ok(rid: str, tenant: str, **fields: Any) -> JobRecord:
    return JobRecord(rid, tenant, "COMPLETED", outcome="ok", has_result=True, **fields)


# A clean run: a leader, a cache hit and a follower of tenant a, a 429; for tenant b a job fal took while Redis was
# away (500 with its id), a submit that timed out (fal created u3, the client was told it is unknown) and a 503.
JOBS = {
    "j1": _ok("j1", "a", cache_role="leader", upstream_id="u1"),
    "j2": _ok("j2", "a", cache_role="hit"),
    "j3": _ok("j3", "a", cache_role="follower"),
    "j4": _ok("j4", "b", upstream_id="u2"),
    "j5": JobRecord("j5", "b", "COMPLETED", outcome="error", error_type=SUBMIT_UNKNOWN),
}
CLEAN = Observation(
    answers=[
        Answer("a", 200, request_id="j1", cache="miss"),
        Answer("a", 200, request_id="j2", cache="hit"),
        Answer("a", 200, request_id="j3", cache="merged"),
        Answer("a", 429, error_type="rate_limited"),
        Answer("b", 500, error_type=ACCEPTED_UNRECORDED, request_id="j4"),
        Answer("b", 504, error_type=SUBMIT_UNKNOWN),
        Answer("b", 503, error_type="state_store_unavailable"),
    ],
    jobs=JOBS,
    tenants={
        "a": TenantBooks(
            history=dict.fromkeys(("j1", "j2", "j3"), "COMPLETED"), charges=[Charge("j1", 100)], spent_micros=100
        ),
        "b": TenantBooks(
            history=dict.fromkeys(("j4", "j5"), "COMPLETED"), charges=[Charge("j4", 200)], spent_micros=200
        ),
    },
    upstream_ids=["u1", "u2", "u3"],
)


def _with_job(obs: Observation, job: JobRecord) -> Observation:
    return replace(obs, jobs={**obs.jobs, job.request_id: job})


def _with_books(obs: Observation, tenant: str, **fields: Any) -> Observation:
    return replace(obs, tenants={**obs.tenants, tenant: replace(obs.tenants[tenant], **fields)})


def test_a_clean_run_breaks_nothing_and_is_settled() -> None:
    assert violations(CLEAN) == []
    assert unsettled(CLEAN) == []


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        # 1. completion
        (replace(CLEAN, jobs={k: v for k, v in JOBS.items() if k != "j1"}), "accepted job j1 of a has no job record"),
        (_with_job(CLEAN, replace(JOBS["j4"], state="IN_QUEUE")), "job j4 never finished: IN_QUEUE"),
        (_with_job(CLEAN, replace(JOBS["j4"], settling=True)), "job j4 never finished: COMPLETED, settling=True"),
        (_with_job(CLEAN, replace(JOBS["j3"], has_result=False)), "job j3 succeeded without a result"),
        (_with_job(CLEAN, replace(JOBS["j5"], error_type=None)), "job j5 ended (error) with neither"),
        (_with_job(CLEAN, replace(JOBS["j2"], tenant="b")), "accepted job j2 of a is recorded for b"),
        (replace(CLEAN, answers=[*CLEAN.answers, Answer("a", 200)]), "a 200 answer for a carried no request id"),
        (replace(CLEAN, answers=[*CLEAN.answers, CLEAN.answers[0]]), "request id j1 was answered 2 times"),
        (_with_books(CLEAN, "b", history={"j4": "COMPLETED"}), "job j5 of b is missing from the admin history"),
        (_with_books(CLEAN, "b", history={"j4": "COMPLETED", "j5": "IN_QUEUE"}), "shows job j5 of b as IN_QUEUE"),
        # 2. upstream
        (replace(CLEAN, upstream_ids=["u1", "u2", "u3", "u4"]), "4 upstream submits for 2 accepted non-cached jobs"),
        (replace(CLEAN, upstream_ids=["u2", "u3"]), "upstream job u1 is recorded but the simulator never created"),
        (replace(CLEAN, upstream_ids=["u1", "u2", "u3", "u3"]), "the simulator reports job u3 twice"),
        (_with_job(CLEAN, replace(JOBS["j4"], upstream_id="u1")), "upstream job u1 is recorded by 2 gateway jobs"),
        (_with_job(CLEAN, replace(JOBS["j3"], upstream_id="u3")), "follower j3 has an upstream job of its own"),
        (_with_job(CLEAN, replace(JOBS["j4"], upstream_id=None)), "accepted job j4 of b has no upstream id"),
        (
            _with_job(CLEAN, replace(JOBS["j5"], upstream_id="u3")),
            "job j5 of b was failed as upstream_submit_unknown although fal's id u3 is recorded",
        ),
        # 3. ledger
        (_with_books(CLEAN, "a", charges=[Charge("j1", 100)] * 2, spent_micros=200), "job j1 of a is charged 2 times"),
        (_with_books(CLEAN, "b", charges=[], spent_micros=0), "job j4 of b succeeded upstream but was never charged"),
        (_with_books(CLEAN, "a", spent_micros=150), "the ledger of a sums to 100 micros, but its usage says 150"),
        (
            _with_books(CLEAN, "b", charges=[Charge("j4", 200), Charge("j5", 1)], spent_micros=201),
            "b is charged for j5, which did not succeed (error)",
        ),
        (
            _with_books(CLEAN, "a", charges=[Charge("j1", 100), Charge("j2", 1)], spent_micros=101),
            "a is charged for j2, a cache hit",
        ),
        (
            _with_books(CLEAN, "a", charges=[Charge("j1", 100), Charge("j4", 1)], spent_micros=101),
            "a is charged for j4, a job of b",
        ),
        (
            _with_books(CLEAN, "a", charges=[Charge("j1", 100), Charge("gone", 1)], spent_micros=101),
            "a is charged for gone, which has no job record",
        ),
        # 4. holds
        (_with_books(CLEAN, "a", reservations=frozenset({"j1"})), "a holds a reservation for j1, which has a finished"),
        (
            _with_books(CLEAN, "b", inflight=frozenset({"x"})),
            "b holds a concurrency slot for x, which has no job record",
        ),
        # 5. reserved
        (_with_books(CLEAN, "b", reserved_micros=5), "b still has 5 micros reserved"),
    ],
)
def test_each_broken_invariant_is_reported(broken: Observation, expected: str) -> None:
    found = violations(broken)
    assert any(expected in line for line in found), found


def test_an_unfinished_job_may_hold_its_reservation_and_slot_but_the_run_is_not_settled() -> None:
    running = _with_job(CLEAN, replace(JOBS["j4"], state="IN_PROGRESS"))
    running = _with_books(running, "b", reservations=frozenset({"j4"}), inflight=frozenset({"j4"}), reserved_micros=9)
    running = replace(running, due=frozenset({"j4"}))
    assert not any("holds" in line for line in violations(running))
    assert unsettled(running) == [
        "job j4 is not finished (IN_PROGRESS)",
        "job j4 is still in the tracker's schedule",
        "b still has 9 micros reserved",
    ]


def test_the_surplus_of_upstream_jobs_is_bounded_by_the_unknown_outcomes() -> None:
    # No answer to a sent request is unknown too; a refused connection is not (nothing was sent).
    cut_off = replace(CLEAN, answers=[*CLEAN.answers, Answer("b", None)], upstream_ids=["u1", "u2", "u3", "u4"])
    assert violations(cut_off) == []
    refused = replace(CLEAN, answers=[*CLEAN.answers, Answer("b", None, sent=False)], upstream_ids=cut_off.upstream_ids)
    assert any("4 upstream submits" in line for line in violations(refused))
    assert violations(replace(CLEAN, upstream_ids=["u1", "u2"])) == []  # the timed-out submit never reached fal
    assert any("only 1 upstream submits" in line for line in violations(replace(CLEAN, upstream_ids=["u1"])))


def test_answers_say_what_was_accepted_and_what_is_unknown() -> None:
    assert Answer("a", 200, request_id="r").accepted
    assert Answer("a", 503, error_type=ACCEPTED_UNRECORDED, request_id="r").accepted
    assert not Answer("a", 503, error_type="state_store_unavailable").accepted
    assert not Answer("a", 200).accepted
    assert Answer("a", None).outcome_unknown
    assert not Answer("a", None, sent=False).outcome_unknown
    assert Answer("a", 504, error_type=SUBMIT_UNKNOWN).outcome_unknown


def test_a_job_record_is_read_from_its_json_encoded_hash() -> None:
    fields: dict[str, Any] = {
        "tenant_id": "t",
        "state": "COMPLETED",
        "outcome": "ok",
        "result": {"video": {}},
        "cache_role": "leader",
    }
    fields |= {"upstream_id": "u", "settling": False, "error_type": None, "input": {"prompt": "x"}}
    encoded = {name: json.dumps(value) for name, value in fields.items() if value is not None}
    assert job_record("r", encoded) == JobRecord(
        "r", "t", "COMPLETED", outcome="ok", has_result=True, cache_role="leader", upstream_id="u"
    )
    assert not job_record("r", {"tenant_id": '"t"', "state": '"COMPLETED"', "settling": "true"}).finished
