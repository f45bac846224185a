"""Redis failing under load (restarted, stopped for seconds, frozen by SIGSTOP): the invariants hold after."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import MakeRig
from tests.faults.rig import FaultRig, Load, PrivateRedis, assert_invariants, drive, running, until
from tests.support.faults import ACCEPTED_UNRECORDED

pytestmark = pytest.mark.e2e
OUTAGE_SECONDS = 3.0
STORE_DOWN = (503, "state_store_unavailable")
SLOW_SUBMITS = 3
# Each test runs the gateway on a private redis-server of its own (never the suite's server, never 6379). The tracker's
# lease is 6 s here, so the submit grace (submit timeout plus one lease, 7 s) outlasts the 3 s outages, as the default
# 90 s grace outlasts a short outage: a job fal accepted during the outage is recorded by the process that kept its id
# once Redis is back. An outage longer than the grace races that write against the tracker's stalled-submit check;
# test_found_bugs.py forces both orders.
LONG_GRACE = {"GATEWAY_TRACKER_LEASE_SECONDS": "6"}


def test_redis_restarted_mid_run(make_rig: MakeRig, private_redis: PrivateRedis) -> None:
    with running(make_rig(private_redis.url, env=LONG_GRACE)) as rig, private_redis.client() as store:

        def inject(load: Load) -> None:
            for answered in (8, 20, 32):  # three restarts, each as soon as the load has got this far
                load.wait_answers(answered)
                private_redis.restart()

        answers, obs = drive(rig, store, "redis-restart", inject)
        assert_invariants(obs)
    assert private_redis.starts == 4, "Redis was not restarted three times"
    assert sum(a.accepted for a in answers) > 10


def test_redis_stopped_for_seconds(make_rig: MakeRig, private_redis: PrivateRedis) -> None:
    with running(make_rig(private_redis.url, env=LONG_GRACE)) as rig, private_redis.client() as store:

        def inject(load: Load) -> None:
            load.wait_answers(10)
            _submits_at_fal(rig)
            private_redis.stop()
            _hold_outage(load)
            private_redis.start()

        answers, obs = drive(rig, store, "redis-stop", inject, count=50, rate=8)
        assert_invariants(obs)
    assert any((a.status, a.error_type) == STORE_DOWN for a in answers), "no submit met the outage"
    assert any(a.error_type == ACCEPTED_UNRECORDED for a in answers), "fal accepted no job during the outage"


def test_redis_frozen_by_sigstop(make_rig: MakeRig, private_redis: PrivateRedis) -> None:
    """A frozen Redis accepts connections and reads nothing: commands time out, and those already sent run later,
    after the gateway gave up on them (an admission for a request answered 503, say)."""
    with running(make_rig(private_redis.url, env=LONG_GRACE)) as rig, private_redis.client() as store:

        def inject(load: Load) -> None:
            load.wait_answers(10)
            _submits_at_fal(rig)
            private_redis.freeze()
            try:
                _hold_outage(load)
            finally:
                private_redis.thaw()

        answers, obs = drive(rig, store, "redis-freeze", inject, count=50, rate=8)
        assert_invariants(obs)
    assert any((a.status, a.error_type) == STORE_DOWN for a in answers), "no submit met the freeze"
    assert any(a.error_type == ACCEPTED_UNRECORDED for a in answers), "fal accepted no job during the freeze"


def _submits_at_fal(rig: FaultRig) -> None:
    """Hold a few submits at fal, so that fal accepts them while Redis is away: their ids cannot be recorded."""
    rig.sim_fault(op="submit", kind="slow", delay_seconds=0.6, times=SLOW_SUBMITS)
    until(lambda: _taken(rig) >= 2, timeout=10, what="two submits in flight at fal")


def _taken(rig: FaultRig) -> int:
    return SLOW_SUBMITS - sum(int(rule["remaining"]) for rule in rig.faults_left())


def _hold_outage(load: Load) -> None:
    """Keep the fault for OUTAGE_SECONDS, and until at least three submits were answered during it."""
    started, before = time.monotonic(), load.count
    until(
        lambda: time.monotonic() - started >= OUTAGE_SECONDS and load.count >= before + 3,
        timeout=OUTAGE_SECONDS + 15,
        what="an outage met by submits",
    )
