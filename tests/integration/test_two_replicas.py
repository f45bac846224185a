"""Two gateway app instances sharing one real Redis: revocation reaches both within a second despite their auth
caches, rotation grace holds on both, and rate and concurrency limits hold across them exactly."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from service import keys
from service.simulator.state import SimulatorState
from tests.support.admin import ADMIN, key_auth, tenant_key
from tests.support.clocks import ShiftableClock
from tests.support.endpoints import T2V
from tests.support.redis_cluster import MODES
from tests.support.replicas import StartReplicas

REDIS_MODES = MODES  # admission (rate, concurrency, auth failures) across replicas, on one Redis and on a cluster


@dataclass
class Pair:
    a: httpx.AsyncClient
    b: httpx.AsyncClient
    sim: SimulatorState
    clock: ShiftableClock
    redis: Redis

    @property
    def both(self) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        return self.a, self.b

    async def tenant(self, **policy: Any) -> str:
        return await tenant_key(self.a, policy=policy)


@pytest.fixture
async def pair(replicas: StartReplicas, redis_client: Redis) -> Pair:
    group = await replicas(trusted_proxy_hops=1, auth_cache_seconds=60)
    group.sim.configure(processing_seconds=30)
    a, b = group.clients
    return Pair(a, b, group.sim, group.clock, redis_client)


async def _me(client: httpx.AsyncClient, key: str) -> int:
    return (await client.get("/v1/me", headers=key_auth(key))).status_code


async def test_a_revoked_key_is_refused_by_both_replicas_within_one_second(pair: Pair) -> None:
    key = await pair.tenant()
    key_id = key.split(":")[0]
    assert [await _me(c, key) for c in pair.both] == [200, 200]
    # Both replicas answer from their cache: with the key's record gone from Redis (unannounced), they still accept it.
    record = keys.api_key(key_id)
    dumped = await pair.redis.dump(record)
    assert dumped is not None
    await pair.redis.delete(record)
    assert [await _me(c, key) for c in pair.both] == [200, 200], "both replicas answer from their cache"
    await pair.redis.restore(record, 0, dumped, replace=True)

    revoked_at = time.monotonic()
    assert (await pair.a.delete(f"/admin/tenants/acme/keys/{key_id}", headers=ADMIN)).status_code == 200
    refused_after: dict[str, float] = {}
    while len(refused_after) < 2 and time.monotonic() - revoked_at < 1.0:
        for name, client in (("a", pair.a), ("b", pair.b)):
            if name not in refused_after and await _me(client, key) == 401:
                refused_after[name] = time.monotonic() - revoked_at
        await asyncio.sleep(0.01)
    assert set(refused_after) == {"a", "b"}, refused_after
    assert max(refused_after.values()) < 1.0


async def test_disabling_a_tenant_reaches_both_replicas(pair: Pair) -> None:
    key = await pair.tenant()
    assert [await _me(c, key) for c in pair.both] == [200, 200]
    await pair.b.patch("/admin/tenants/acme", json={"disabled": True}, headers=ADMIN)

    async def both_refuse() -> bool:
        return [await _me(c, key) for c in pair.both] == [403, 403]

    deadline = time.monotonic() + 1.0
    while not await both_refuse():
        assert time.monotonic() < deadline, "not refused by both within one second"
        await asyncio.sleep(0.01)


async def test_a_rotated_key_works_on_both_during_the_grace_period_and_on_neither_after(pair: Pair) -> None:
    old = await pair.tenant()
    rotated = await pair.b.post(
        f"/admin/tenants/acme/keys/{old.split(':')[0]}/rotate", json={"grace_seconds": 300}, headers=ADMIN
    )
    new = rotated.json()["key"]
    assert [await _me(c, k) for c in pair.both for k in (old, new)] == [200, 200, 200, 200]
    pair.clock.advance(301)
    assert [await _me(c, old) for c in pair.both] == [401, 401]
    assert [await _me(c, new) for c in pair.both] == [200, 200]


async def _storm(pair: Pair, key: str, count: int) -> list[int]:
    headers = key_auth(key)

    async def one(n: int) -> int:
        client = pair.a if n % 2 else pair.b
        return (await client.post(f"/queue/{T2V}", json={"prompt": f"p{n}"}, headers=headers)).status_code

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def test_a_rate_limit_of_20_admits_exactly_20_of_200_concurrent_requests_over_both(pair: Pair) -> None:
    codes = await _storm(pair, await pair.tenant(requests_per_minute=20), 200)
    assert codes.count(200) == 20
    assert codes.count(429) == 180
    assert pair.sim.stats()["calls"]["submit"] == 20


async def test_a_concurrency_limit_of_20_admits_exactly_20_of_200_concurrent_requests_over_both(pair: Pair) -> None:
    codes = await _storm(pair, await pair.tenant(max_concurrent=20), 200)
    assert codes.count(200) == 20
    assert codes.count(429) == 180
    assert pair.sim.stats()["calls"]["submit"] == 20


async def test_failed_authentication_is_limited_per_source_across_replicas(pair: Pair) -> None:
    key = await pair.tenant()
    pair.clock.freeze(at=1_800_000_030.0)  # 30 s into a one-minute failure window, for as long as the test runs
    bad = key_auth("sgw_aaaaaaaaaaaaaaaaaaaa:" + "x" * 43)
    attacker = {**bad, "X-Forwarded-For": "203.0.113.5"}
    limit = 30
    codes = [
        (await (pair.a if n % 2 else pair.b).get("/v1/me", headers=attacker)).status_code for n in range(limit + 2)
    ]
    assert codes[:limit] == [401] * limit
    assert codes[limit:] == [429, 429]
    blocked = await pair.a.get("/v1/me", headers=attacker)
    assert blocked.json()["error_type"] == "auth_rate_limited"
    assert blocked.headers["retry-after"] == "30", "blocked until the window ends"
    other_source = await pair.b.get("/v1/me", headers={**bad, "X-Forwarded-For": "198.51.100.7"})
    assert other_source.status_code == 401
    valid = await pair.b.get("/v1/me", headers={**key_auth(key), "X-Forwarded-For": "203.0.113.5"})
    assert valid.status_code == 200, "only failed attempts are limited"


async def test_every_replica_reads_the_budget_gauges_from_redis_not_only_the_reconciling_one(
    replicas: StartReplicas, redis_client: Redis
) -> None:
    group = await replicas(budget_reconcile_interval_seconds=3600)
    created = await group.clients[0].post(
        "/admin/tenants", json={"id": "acme", "name": "A", "budget": {"limit_micros": 9_000_000}}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    usage = (await group.clients[0].get("/admin/tenants/acme/usage", headers=ADMIN)).json()
    # Spend settled by a third replica that neither of these saw: only Redis knows it.
    await redis_client.hincrby(keys.budget("acme", usage["period_id"]), "spent", 1_234_000)
    await redis_client.delete(keys.reconcile_lock())
    for deps in group.deps:  # the first takes the reconcile lock, the second does not
        await deps.reconciler.round()
    for deps in group.deps:
        registry = deps.job_api.metrics.registry
        assert registry.get_sample_value("gateway_budget_spent_micros", {"tenant": "acme"}) == 1_234_000
        assert registry.get_sample_value("gateway_budget_limit_micros", {"tenant": "acme"}) == 9_000_000
