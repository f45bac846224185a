"""The gateway process killed with SIGKILL in the middle of submits, then started again: the invariants hold after."""

from __future__ import annotations

import pytest
import redis

from tests.faults.conftest import MakeRig
from tests.faults.rig import FaultRig, Load, assert_invariants, drive, running, until

pytestmark = pytest.mark.e2e
SLOW_SUBMITS = 4


def test_gateway_killed_during_submits(make_rig: MakeRig, redis_url: str, shared_store: redis.Redis) -> None:
    with running(make_rig(redis_url)) as rig:

        def inject(load: Load) -> None:
            load.wait_answers(10)
            # Slow submits keep some jobs between "sent to fal" and "fal's id recorded" when the process dies.
            rig.sim_fault(op="submit", kind="slow", delay_seconds=0.8, times=SLOW_SUBMITS)
            rig.ready_to_start()
            until(lambda: _slow_taken(rig) >= 2, timeout=10, what="two submits in flight at fal")
            rig.kill_gateway()
            rig.start_gateway()

        answers, obs = drive(rig, shared_store, "gateway-kill", inject)
        assert_invariants(obs)
    cut_off = [a for a in answers if a.status is None and a.sent]
    assert len(cut_off) >= 2, "the kill cut off no submit in flight"
    # A job killed between fal's answer and its record is failed as unknown after its grace, never re-submitted.
    assert any(job.error_type == "upstream_submit_unknown" for job in obs.jobs.values())


def _slow_taken(rig: FaultRig) -> int:
    return SLOW_SUBMITS - sum(int(rule["remaining"]) for rule in rig.faults_left())
