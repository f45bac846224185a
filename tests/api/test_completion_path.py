"""Every way a job can end goes through the one completion path: its hook runs exactly once per job and
``gateway_jobs_completed_total`` counts each job once (docs/architecture.md, "The completion path")."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from service import keys
from service.config import Settings
from service.domain.jobs import Job
from service.jobs.store import DueSchedule, JobStore
from service.simulator.app import SimulatorState
from service.simulator.faults import FaultRule
from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.gateway import Gateway, fast_settings, local, running_gateway
from tests.support.waiting import eventually


@dataclass
class RecordingHook:
    """A completion hook that records what it was asked to do; it can be told to fail its first dispatches."""

    name: str = "recording"
    written: list[str] = field(default_factory=list)  # every payload built; a racer that loses builds one too
    dispatched: list[tuple[str, str]] = field(default_factory=list)
    fail_next: int = 0

    def outbox(self, job: Job) -> str | None:
        self.written.append(job.request_id)
        return json.dumps({"request_id": job.request_id, "outcome": job.outcome, "error_type": job.error_type})

    async def dispatch(self, job: Job, payload: str) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RedisConnectionError("the replica died here")
        self.dispatched.append((job.request_id, payload))

    def outcomes(self) -> dict[str, tuple[str | None, str | None]]:
        decoded = (json.loads(payload) for _rid, payload in self.dispatched)
        return {entry["request_id"]: (entry["outcome"], entry["error_type"]) for entry in decoded}


@dataclass
class Rig:
    gateway: Gateway
    hook: RecordingHook

    async def settled(self) -> None:
        """Wait until no job is scheduled any more: after that nothing can run a completion again."""
        due = DueSchedule(self.gateway.redis)

        async def empty() -> bool:
            return await due.size() == 0

        await eventually(empty)

    def completed_metric(self) -> float:
        return sum(
            sample.value
            for family in self.gateway.metrics.registry.collect()
            for sample in family.samples
            if sample.name == "gateway_jobs_completed_total"
        )

    async def assert_each_completed_once(self, expected: int) -> dict[str, tuple[str | None, str | None]]:
        await self.settled()
        ids = [rid for rid, _ in self.hook.dispatched]
        assert len(set(ids)) == expected, self.hook.dispatched
        assert Counter(ids).most_common(1)[0][1] == 1, "a job's hook ran more than once"
        # A request completed by two racers (a merged follower: its leader's completion and its own attach) has its
        # payload built by both, but only the transition's winner writes it; each job's is dispatched once.
        assert set(self.hook.written) == set(ids), "every job whose outbox was built had it dispatched"
        assert self.completed_metric() == expected
        for rid in ids:
            assert not await self.gateway.redis.exists(keys.job_outbox(rid)), "the outbox is cleared"
        return self.hook.outcomes()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def settings(redis_url: str, settings_overrides: dict[str, Any]) -> Settings:
    return fast_settings(
        redis_url, upstream_submit_timeout_seconds=0.5, upstream_submit_connect_retries=0, **settings_overrides
    )


@pytest.fixture
async def rig(redis_client: Redis, sim: SimulatorState, settings: Settings) -> AsyncIterator[Rig]:
    hook = RecordingHook()
    async with running_gateway(redis_client, sim, settings, completion_hooks=(hook,)) as gateway:
        yield Rig(gateway, hook)


async def _finished(gateway: Gateway, body: dict[str, Any] | None = None) -> dict[str, Any]:
    submitted = await gateway.submit(body=body)
    assert submitted.status_code == 200, submitted.text
    return await gateway.wait_status(local(submitted.json()["status_url"]))


async def test_success(rig: Rig) -> None:
    final = await _finished(rig.gateway)
    assert await rig.assert_each_completed_once(1) == {final["request_id"]: ("ok", None)}


async def test_upstream_failure(rig: Rig) -> None:
    rig.gateway.sim.add_fault(FaultRule(op="job", kind="fail", status=500))
    final = await _finished(rig.gateway)
    assert await rig.assert_each_completed_once(1) == {final["request_id"]: ("error", "runner_server_error")}


async def test_cancel_before_it_ran_and_after_it_ended(rig: Rig) -> None:
    rig.gateway.sim.configure(queue_seconds=60)
    submitted = await rig.gateway.submit()
    headers = await rig.gateway.auth()
    cancel_url = local(submitted.json()["cancel_url"])
    assert (await rig.gateway.client.put(cancel_url, headers=headers)).status_code == 202
    final = await rig.gateway.wait_status(local(submitted.json()["status_url"]))
    again = await rig.gateway.client.put(cancel_url, headers=headers)
    assert again.json() == {"status": "ALREADY_COMPLETED"}
    assert await rig.assert_each_completed_once(1) == {final["request_id"]: ("cancelled", "client_cancelled")}


async def test_submit_refused_by_fal(rig: Rig) -> None:
    rig.gateway.sim.add_fault(FaultRule(op="submit", kind="http_error", status=400, body={"detail": "no"}))
    refused = await rig.gateway.submit()
    assert refused.status_code == 400
    outcomes = await rig.assert_each_completed_once(1)
    assert list(outcomes.values()) == [("error", "upstream_error")]


async def test_submit_outcome_unknown(rig: Rig) -> None:
    rig.gateway.sim.add_fault(FaultRule(op="submit", kind="timeout", delay_seconds=2))
    timed_out = await rig.gateway.submit()
    assert timed_out.status_code == 504
    assert timed_out.json()["error_type"] == "upstream_submit_unknown"
    outcomes = await rig.assert_each_completed_once(1)
    assert list(outcomes.values()) == [("error", "upstream_submit_unknown")]


@pytest.mark.parametrize("settings_overrides", [{"reservation_ttl_seconds": 1.0}])
async def test_record_lost_after_fal_accepted(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process keeps fal's id only as long as a reservation lives (1 s here); after that the record is lost."""
    original = JobStore.update

    async def losing_update(self: JobStore, request_id: str, **values: Any) -> bool:
        if "upstream_id" in values:
            raise RedisConnectionError("Redis went away")
        return await original(self, request_id, **values)

    monkeypatch.setattr(JobStore, "update", losing_update)
    lost = await rig.gateway.submit()
    assert lost.status_code == 500
    assert lost.json()["error_type"] == "upstream_accepted_unrecorded", "never 'nothing was sent'"
    assert rig.gateway.sim.stats()["calls"]["submit"] == 1
    rig.gateway.clock.advance(rig.gateway.settings.submit_grace_seconds + 1)  # the tracker gives up on it
    outcomes = await rig.assert_each_completed_once(1)
    assert list(outcomes.values()) == [("error", "upstream_submit_unknown")]


async def test_cache_hit(rig: Rig) -> None:
    first = await _finished(rig.gateway, {**T2V_INPUT, "seed": 7})
    hit = await rig.gateway.submit(body={**T2V_INPUT, "seed": 7})
    assert hit.headers["x-gateway-cache"] == "hit"
    outcomes = await rig.assert_each_completed_once(2)
    assert outcomes == {first["request_id"]: ("ok", None), hit.json()["request_id"]: ("ok", None)}


async def test_merged_follower(rig: Rig) -> None:
    body = {**T2V_INPUT, "seed": 8}
    await rig.gateway.auth()  # the tenant exists before both requests race
    leader, follower = await asyncio.gather(rig.gateway.submit(body=body), rig.gateway.submit(body=body))
    assert sorted([leader.headers["x-gateway-cache"], follower.headers["x-gateway-cache"]]) == ["merged", "miss"]
    outcomes = await rig.assert_each_completed_once(2)
    assert outcomes == {leader.json()["request_id"]: ("ok", None), follower.json()["request_id"]: ("ok", None)}
    assert rig.gateway.sim.stats()["calls"]["submit"] == 1


async def test_a_completion_interrupted_after_the_transition_is_finished_by_the_tracker(rig: Rig) -> None:
    rig.hook.fail_next = 1  # the completing step dies between the transition and its hook
    final = await _finished(rig.gateway)
    await rig.settled()
    assert rig.hook.written == [final["request_id"]], "the outbox was written once, with the transition"
    assert rig.hook.outcomes() == {final["request_id"]: ("ok", None)}, "the tracker dispatched it after the failure"
    assert rig.completed_metric() == 1
    usage = await rig.gateway.client.get("/admin/tenants/acme/usage", headers=rig.gateway.admin)
    assert usage.json()["reserved_micros"] == 0
    assert usage.json()["spent_micros"] > 0


async def test_a_client_never_sees_completed_before_the_charge_is_booked(rig: Rig) -> None:
    final = await _finished(rig.gateway)
    usage = await rig.gateway.client.get("/admin/tenants/acme/usage", headers=rig.gateway.admin)
    assert usage.json()["reserved_micros"] == 0
    assert usage.json()["spent_micros"] > 0
    assert final["status"] == "COMPLETED"


async def test_the_endpoint_label_is_the_jobs_endpoint(rig: Rig) -> None:
    await _finished(rig.gateway)
    await rig.settled()
    assert (
        rig.gateway.metrics.registry.get_sample_value(
            "gateway_jobs_completed_total", {"endpoint": T2V, "outcome": "ok"}
        )
        == 1
    )
