"""Key rotation against real Redis: concurrent rotations of one key issue exactly one successor."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import cast

import pytest
import redis
from redis.asyncio import Redis

from service import keys
from service.domain.tenants import TenantCreate
from service.errors import Conflict, NotFound
from service.events import EventBus
from service.tenants.store import TenantStore

ROTATIONS = 30
GRACE = 300.0


@pytest.fixture
async def store(redis_client: Redis) -> TenantStore:
    tenants = TenantStore(redis_client, EventBus(redis_client))
    await tenants.create_tenant(TenantCreate(id="acme", name="Acme"))
    return tenants


async def _key_records(redis: Redis) -> set[str]:
    return {key async for key in redis.scan_iter(match=keys.api_key("*"))}


async def test_concurrent_rotations_of_one_key_issue_exactly_one_successor(
    store: TenantStore, redis_client: Redis
) -> None:
    _, old = await store.create_key("acme", name="ci")
    # Open the connections first, so the rotations really run at once instead of in connection order.
    await asyncio.gather(*(redis_client.ping() for _ in range(ROTATIONS)))
    results = await asyncio.gather(
        *(store.rotate_key("acme", old.key_id, grace_seconds=GRACE) for _ in range(ROTATIONS)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1, f"{len(won)} of {ROTATIONS} concurrent rotations issued a successor"
    issued, new, rotated = won[0]
    assert all(isinstance(r, Conflict) for r in refused)
    assert {str(r) for r in refused} <= {f"Key '{old.key_id}' was already rotated to '{issued.key_id}'"}
    assert rotated.rotated_to == issued.key_id == new.key_id
    assert rotated.expires_at is not None
    assert cast("set[str]", await redis_client.smembers(keys.tenant_keys("acme"))) == {old.key_id, new.key_id}
    assert await _key_records(redis_client) == {keys.api_key(old.key_id), keys.api_key(new.key_id)}
    assert [k.key_id for k in await store.list_keys("acme")] == [old.key_id, new.key_id]


async def test_a_rotated_key_cannot_be_rotated_again(store: TenantStore) -> None:
    _, old = await store.create_key("acme")
    issued, _, _ = await store.rotate_key("acme", old.key_id, grace_seconds=GRACE)
    with pytest.raises(Conflict, match=f"already rotated to '{issued.key_id}'"):
        await store.rotate_key("acme", old.key_id, grace_seconds=GRACE)


async def test_a_revoked_key_cannot_be_rotated_and_no_successor_is_left(
    store: TenantStore, redis_client: Redis
) -> None:
    _, old = await store.create_key("acme")
    await store.revoke_key("acme", old.key_id)
    with pytest.raises(Conflict, match="is revoked and cannot be rotated"):
        await store.rotate_key("acme", old.key_id, grace_seconds=GRACE)
    assert await _key_records(redis_client) == {keys.api_key(old.key_id)}


@pytest.mark.parametrize(
    ("meanwhile", "error", "message"),
    [
        (lambda r, k: r.hset(keys.api_key(k), "revoked_at", json.dumps(time.time())), Conflict, "is revoked"),
        (lambda r, k: r.delete(keys.api_key(k)), NotFound, "not found"),
    ],
    ids=["revoked", "deleted"],
)
async def test_a_claim_refused_after_the_checks_removes_its_successor(
    redis_client: Redis,
    redis_url: str,
    meanwhile: Callable[[redis.Redis, str], object],
    error: type[Exception],
    message: str,
) -> None:
    """The key changes after rotate_key checked it (here: when it reads the clock, just after the checks)."""
    sync = redis.Redis.from_url(redis_url)
    armed: list[str] = []

    def clock() -> float:
        if armed:
            meanwhile(sync, armed.pop())
        return time.time()

    store = TenantStore(redis_client, EventBus(redis_client), clock=clock)
    await store.create_tenant(TenantCreate(id="acme", name="Acme"))
    _, old = await store.create_key("acme")
    armed.append(old.key_id)
    with pytest.raises(error, match=message):
        await store.rotate_key("acme", old.key_id, grace_seconds=GRACE)
    sync.close()
    assert cast("set[str]", await redis_client.smembers(keys.tenant_keys("acme"))) == {old.key_id}
    assert await _key_records(redis_client) <= {keys.api_key(old.key_id)}
    record = await store.get_key(old.key_id)
    assert record is None or record.rotated_to is None


async def test_a_rotation_racing_a_revocation_leaves_no_orphan_successor(
    store: TenantStore, redis_client: Redis
) -> None:
    """Each key is rotated and revoked at once: either order is fine, but a successor exists only where the rotation
    was claimed, and every successor is the one its predecessor names."""
    olds = [(await store.create_key("acme"))[1] for _ in range(ROTATIONS)]
    await asyncio.gather(*(redis_client.ping() for _ in range(2 * ROTATIONS)))
    results = await asyncio.gather(
        *(
            step
            for old in olds
            for step in (
                store.rotate_key("acme", old.key_id, grace_seconds=GRACE),
                store.revoke_key("acme", old.key_id),
            )
        ),
        return_exceptions=True,
    )
    assert {str(r) for r in results if isinstance(r, BaseException)} <= {
        f"Key '{old.key_id}' is revoked and cannot be rotated" for old in olds
    }
    named = set()
    for old in olds:
        record = await store.get_key(old.key_id)
        assert record is not None
        assert record.revoked_at is not None
        if record.rotated_to is not None:
            named.add(record.rotated_to)
    successors = cast("set[str]", await redis_client.smembers(keys.tenant_keys("acme"))) - {o.key_id for o in olds}
    assert successors == named
    assert len(await _key_records(redis_client)) == len(olds) + len(named)
