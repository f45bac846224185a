"""The tenant store's multi-key reads and writes, on one Redis and on a cluster, where its tenants' and keys'
records live in different slots: listing, concurrent patches (WATCH/MULTI on one key) and deletion."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from service import keys
from service.domain.tenants import TenantCreate
from service.events import EventBus
from service.tenants.store import TenantStore
from tests.support.redis_cluster import MODES

REDIS_MODES = MODES
TENANTS = 12


async def test_listing_patching_and_deleting_tenants_whose_records_span_slots(redis_client: Redis) -> None:
    store = TenantStore(redis_client, EventBus(redis_client))
    for n in range(TENANTS):
        await store.create_tenant(TenantCreate(id=f"tenant-{n}", name=f"Tenant {n}"))
    issued = [(await store.create_key("tenant-3"))[0].key_id for _ in range(4)]

    listed = await store.list_tenants()
    await asyncio.gather(*(store.update_tenant("tenant-3", {"metadata": {f"m{n}": n}}) for n in range(10)))
    deleted = await store.delete_tenant("tenant-3")

    assert [t.id for t in listed] == sorted(f"tenant-{n}" for n in range(TENANTS))
    assert sorted(deleted) == sorted(issued)
    assert await store.get_tenant("tenant-3") is None
    assert not await redis_client.exists(*[keys.api_key(k) for k in issued])
    assert len(await store.list_tenants()) == TENANTS - 1


async def test_concurrent_patches_of_one_tenant_lose_none_of_each_other(redis_client: Redis) -> None:
    store = TenantStore(redis_client, EventBus(redis_client))
    await store.create_tenant(TenantCreate(id="acme", name="Acme"))

    await asyncio.gather(*(store.update_tenant("acme", {"metadata": {f"m{n}": n}}) for n in range(10)))

    tenant = await store.require_tenant("acme")
    assert tenant.metadata == {f"m{n}": n for n in range(10)}
