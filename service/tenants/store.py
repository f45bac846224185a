"""Tenants and their API keys in Redis. Only a hash of each key's secret is ever stored."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from service import keys
from service.domain.apikeys import IssuedKey, PresentedKey, generate_key, secret_matches
from service.errors import Conflict, NotFound


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    created_at: float
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    tenant_id: str
    secret_hash: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a tenant API request."""

    tenant_id: str
    key_id: str


class TenantStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def create_tenant(self, tenant_id: str, name: str) -> Tenant:
        tenant = Tenant(id=tenant_id, name=name, created_at=time.time())
        created = await self._redis.set(keys.tenant(tenant_id), json.dumps(asdict(tenant)), nx=True)
        if not created:
            raise Conflict(f"Tenant '{tenant_id}' already exists")
        await self._redis.sadd(keys.tenant_index(), tenant_id)
        return tenant

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        raw = await self._redis.get(keys.tenant(tenant_id))
        return Tenant(**json.loads(raw)) if raw else None

    async def create_key(self, tenant_id: str) -> IssuedKey:
        if await self.get_tenant(tenant_id) is None:
            raise NotFound(f"Tenant '{tenant_id}' not found")
        issued = generate_key()
        record = KeyRecord(issued.key_id, tenant_id, issued.secret_hash, time.time())
        await self._redis.set(keys.api_key(issued.key_id), json.dumps(asdict(record)), nx=True)
        return issued

    async def authenticate(self, presented: PresentedKey) -> Principal | None:
        """The principal for a presented key, or None for an unknown key, wrong secret or disabled tenant."""
        raw = await self._redis.get(keys.api_key(presented.key_id))
        if raw is None:
            return None
        record = KeyRecord(**json.loads(raw))
        if not secret_matches(presented.secret, record.secret_hash):
            return None
        tenant = await self.get_tenant(record.tenant_id)
        if tenant is None or tenant.disabled:
            return None
        return Principal(tenant_id=record.tenant_id, key_id=record.key_id)
