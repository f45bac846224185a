"""fal failing under load (5xx, timeouts, slow answers, refused and reset connections): the invariants hold after."""

from __future__ import annotations

import contextlib

import pytest
import redis

from tests.faults.conftest import MakeRig
from tests.faults.rig import (
    READ_TIMEOUT,
    SUBMIT_TIMEOUT,
    Load,
    ResetProxy,
    Submit,
    assert_invariants,
    drive,
    mixed_plan,
    running,
    settled_observation,
)
from tests.support.faults import SUBMIT_UNKNOWN, Answer, Observation, accepted_noncached

pytestmark = pytest.mark.e2e
FAL_ERROR = "runner_server_error"  # the error type of the simulator's default fault body


def test_upstream_5xx_on_submit(make_rig: MakeRig, redis_url: str, shared_store: redis.Redis) -> None:
    with running(make_rig(redis_url)) as rig:

        def inject(load: Load) -> None:
            load.wait_answers(6)
            # Four in all: fewer than the five consecutive failures that would open the submit breaker.
            rig.sim_fault(op="submit", kind="http_error", status=500, times=2)
            rig.sim_fault(op="submit", kind="http_error", status=503, times=2)

        answers, obs = drive(rig, shared_store, "submit-5xx", inject)
        assert_invariants(obs)
        assert rig.faults_left() == []
    # Each refused submit reached its client once, with fal's status: none was retried upstream.
    assert sorted(a.status or 0 for a in answers if a.error_type == FAL_ERROR) == [500, 500, 503, 503]
    assert not any(a.outcome_unknown for a in answers)


def test_upstream_5xx_on_status(make_rig: MakeRig, redis_url: str, shared_store: redis.Redis) -> None:
    with running(make_rig(redis_url)) as rig:

        def inject(load: Load) -> None:
            load.wait_answers(6)
            rig.sim_fault(op="status", kind="http_error", status=500, times=6)
            rig.sim_fault(op="status", kind="http_error", status=503, times=6)

        _, obs = drive(rig, shared_store, "status-5xx", inject)
        assert_invariants(obs)
        assert rig.faults_left() == []
    # A failed poll is transient: every accepted job still gets fal's real (successful) outcome.
    _all_accepted_succeeded(obs)
    assert len(set(obs.upstream_ids)) == len(accepted_noncached(obs))


def test_upstream_submit_timeouts(make_rig: MakeRig, redis_url: str, shared_store: redis.Redis) -> None:
    with running(make_rig(redis_url)) as rig:

        def inject(load: Load) -> None:
            load.wait_answers(6)
            rig.sim_fault(op="submit", kind="timeout", delay_seconds=SUBMIT_TIMEOUT + 1.0, times=3)

        answers, obs = drive(rig, shared_store, "submit-timeout", inject)
        assert_invariants(obs)
        assert rig.faults_left() == []
    # fal created each timed-out job; the client was told the outcome is unknown, and nothing was re-submitted.
    unknown = [a for a in answers if a.error_type == SUBMIT_UNKNOWN]
    assert [a.status for a in unknown] == [504, 504, 504]
    assert len(set(obs.upstream_ids)) == len(accepted_noncached(obs)) + 3


def test_upstream_slow_answers(make_rig: MakeRig, redis_url: str, shared_store: redis.Redis) -> None:
    with running(make_rig(redis_url)) as rig:

        def inject(load: Load) -> None:
            load.wait_answers(6)
            rig.sim_fault(op="submit", kind="slow", delay_seconds=SUBMIT_TIMEOUT * 0.6, times=5)
            rig.sim_fault(op="status", kind="slow", delay_seconds=READ_TIMEOUT * 0.6, times=5)

        answers, obs = drive(rig, shared_store, "slow", inject)
        assert_invariants(obs)
        assert rig.faults_left() == []
    # Slow but within the deadlines: nothing is unknown and every accepted job succeeds.
    assert not [a for a in answers if a.outcome_unknown or (a.status or 0) >= 500]
    _all_accepted_succeeded(obs)
    assert len(set(obs.upstream_ids)) == len(accepted_noncached(obs))


def test_simulator_stopped_and_restarted(make_rig: MakeRig, redis_url: str, shared_store: redis.Redis) -> None:
    """Connections refused before anything was sent: the simulator process is stopped, and a new one serves the same
    port a moment later. fal's jobs die with the process, so the jobs in flight then end as lost upstream; the
    submits during the outage are refused as never sent (four: fewer than open the submit breaker)."""
    with running(make_rig(redis_url, own_simulator=True)) as rig:
        tenant_keys = rig.tenants()
        plan = mixed_plan("sim-restart", 30)
        rig.ready_to_start()  # before the load: waiting for it after would let the jobs in flight finish first
        with Load(rig, tenant_keys, plan[:15], rate=10) as load:
            answers = load.join()
        rig.stop_simulator()
        outage_plan = [Submit("plain", {"prompt": f"sim-restart outage {i}"}) for i in range(4)]
        with Load(rig, tenant_keys, outage_plan, rate=10) as load:
            outage = load.join()
        rig.start_simulator()  # a new process on the same port
        with Load(rig, tenant_keys, plan[15:], rate=10) as load:
            answers += outage + load.join()
        obs = settled_observation(rig, shared_store, list(tenant_keys), answers)
        assert_invariants(obs)
    assert {(a.status, a.error_type) for a in outage} == {(503, "upstream_unavailable")}
    assert not any(a.outcome_unknown for a in answers)
    assert len(set(obs.upstream_ids)) == len(accepted_noncached(obs))
    # Jobs the dead simulator had are lost upstream and end so, uncharged; the later ones run normally.
    lost = [job for job in obs.jobs.values() if job.error_type == "upstream_request_lost"]
    assert lost, "no job was in flight when the simulator stopped"
    assert any(job.succeeded for job in obs.jobs.values() if job.upstream_id not in rig.past_upstream_ids)


def test_connection_reset_after_the_submit_was_sent(
    make_rig: MakeRig, redis_url: str, shared_store: redis.Redis
) -> None:
    """fal creates the job, then the gateway's connection is reset before fal's answer: the outcome is unknown, so
    the client is told so and nothing is re-submitted (a proxy does the reset: the simulator cannot)."""
    rig = make_rig(redis_url)
    with contextlib.closing(ResetProxy(rig.sim_port)) as proxy:
        rig.upstream_port = proxy.port
        with running(rig):

            def inject(load: Load) -> None:
                load.wait_answers(6)
                proxy.arm(3)

            answers, obs = drive(rig, shared_store, "reset-after-send", inject)
            assert proxy.resets == 3
            assert_invariants(obs)
    # The only right answer for a submit fal may have taken: unknown, never a plain failure, and never retried.
    assert [a.status for a in answers if a.error_type == SUBMIT_UNKNOWN] == [504, 504, 504]
    assert len(set(obs.upstream_ids)) == len(accepted_noncached(obs)) + 3


def _all_accepted_succeeded(obs: Observation) -> None:
    failed = [(a.request_id, _outcome(obs, a)) for a in obs.answers if a.accepted and _outcome(obs, a) != "ok"]
    assert not failed, failed


def _outcome(obs: Observation, answer: Answer) -> str | None:
    job = obs.jobs.get(str(answer.request_id))
    return None if job is None else f"{job.outcome}" if job.outcome == "ok" else f"{job.outcome}: {job.error_type}"
