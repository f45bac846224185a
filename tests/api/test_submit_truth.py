"""Truth around submits: once fal has accepted a job the gateway never says nothing was sent, keeps its id through a
Redis outage and tracks it when Redis is back; an admission whose job record never appeared frees itself."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from service import keys
from service.config import Settings
from service.domain.budgets import PeriodWindow
from service.domain.policy import TenantPolicy
from service.jobs.store import JobStore
from service.tenants.admission import Admission, Reservation
from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.gateway import Gateway, fast_settings
from tests.support.waiting import eventually


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return fast_settings(redis_url, upstream_submit_timeout_seconds=0.5, budget_reconcile_interval_seconds=0.1)


class RedisAway:
    """Makes the upstream-id write fail as if Redis were unreachable, until ``back()``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.away = True
        self.refused = 0
        original = JobStore.update

        async def update(store: JobStore, request_id: str, **values: Any) -> bool:
            if self.away and "upstream_id" in values:
                self.refused += 1
                raise RedisConnectionError("Redis went away")
            return await original(store, request_id, **values)

        monkeypatch.setattr(JobStore, "update", update)

    def back(self) -> None:
        self.away = False


async def test_an_accepted_submit_redis_cannot_record_is_reported_truthfully_then_recovered(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = RedisAway(monkeypatch)
    answer = await gateway.submit()
    assert answer.status_code == 500
    body = answer.json()
    assert body["error_type"] == "upstream_accepted_unrecorded"
    assert "nothing was sent" not in body["detail"]
    request_id = answer.headers["x-fal-request-id"]
    assert body["request_id"] == request_id
    assert gateway.sim.stats()["calls"]["submit"] == 1
    assert redis.refused > 1, "the write was retried until the submit deadline"
    redis.back()
    status_url = f"/queue/fal-ai/bytedance/requests/{request_id}/status"
    final = await gateway.wait_status(status_url)
    assert "error" not in final, "kept in the process, written when Redis came back, tracked and completed"
    result = await gateway.client.get(f"/queue/fal-ai/bytedance/requests/{request_id}", headers=await gateway.auth())
    assert result.json()["video"]["url"].endswith(".mp4")
    usage = (await gateway.client.get("/admin/tenants/acme/usage", headers=gateway.admin)).json()
    assert (usage["reserved_micros"], usage["spent_micros"] > 0) == (0, True), "settled, not thrown away"
    assert gateway.sim.stats()["calls"]["submit"] == 1, "and never submitted twice"


async def test_an_admission_whose_job_record_never_appeared_is_freed_within_a_minute(gateway: Gateway) -> None:
    await gateway.client.post(
        "/admin/tenants",
        json={"id": "acme", "name": "A", "policy": {"max_concurrent": 1}, "budget": {"limit_micros": 10_000_000}},
        headers=gateway.admin,
    )
    await gateway.auth()
    tenant = (await gateway.client.get("/admin/tenants/acme", headers=gateway.admin)).json()
    period_id = (await gateway.client.get("/admin/tenants/acme/usage", headers=gateway.admin)).json()["period_id"]
    # What a stalled Redis does: it runs an admission after the gateway gave up on it, and no record ever follows.
    admission = Admission(gateway.redis, lease_seconds=120, clock=gateway.clock)
    period = PeriodWindow(id=period_id, start=None, end=None)
    now_ms = int(gateway.clock() * 1000)
    provisional = gateway.settings.admission_provisional_seconds
    await admission.admit(
        "acme",
        TenantPolicy.model_validate(tenant["policy"]),
        "00000000-0000-4000-8000-0000000000aa",
        lease_seconds=provisional,
        reservation=Reservation(
            estimate_micros=500_000,
            period=period,
            limit_micros=10_000_000,
            expires_at_ms=now_ms + int(provisional * 1000),
        ),
    )
    refused = await gateway.submit(body=T2V_INPUT)
    assert refused.status_code == 429, "the orphan holds the tenant's only slot"
    usage = (await gateway.client.get("/admin/tenants/acme/usage", headers=gateway.admin)).json()
    assert usage["reserved_micros"] == 500_000
    gateway.clock.advance(provisional + 1)

    async def freed() -> bool:
        current: dict[str, Any] = (await gateway.client.get("/admin/tenants/acme/usage", headers=gateway.admin)).json()
        return bool(current["reserved_micros"] == 0)

    await eventually(freed)
    accepted = await gateway.client.post(f"/queue/{T2V}", json=T2V_INPUT, headers=await gateway.auth())
    assert accepted.status_code == 200, "the slot freed itself"


async def test_a_redis_that_lost_its_scripts_still_records_and_confirms_a_submit(gateway: Gateway) -> None:
    """The record's pipeline runs the confirmation as a bare EVALSHA: a Redis whose script cache was emptied (a
    restart) answers NOSCRIPT, and the gateway loads the script and runs the (idempotent) pipeline again."""
    await gateway.client.post("/admin/tenants", json={"id": "acme", "name": "A"}, headers=gateway.admin)
    await gateway.auth()
    await gateway.redis.script_flush()
    submitted = await gateway.submit(body=T2V_INPUT)
    assert submitted.status_code == 200, submitted.text
    rid = submitted.json()["request_id"]
    stored = await JobStore(gateway.redis, retention_seconds=3600).get(rid)
    assert stored is not None
    lease = await gateway.redis.zscore(keys.inflight("acme"), rid)
    assert lease is not None
    assert lease > (gateway.clock() + gateway.settings.admission_provisional_seconds) * 1000, "confirmed"
