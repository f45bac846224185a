"""Tenants and their API keys in Redis. Only a hash of each key's secret is ever stored.

Every change publishes an invalidation (``key:<key_id>`` or ``tenant:<tid>``) on the auth channel, so in-process
auth caches on every replica drop the entry within milliseconds.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import WatchError

from service import keys
from service.domain.apikeys import IssuedKey, generate_key, is_valid_tenant_id
from service.domain.tenants import ApiKeyRecord, KeyState, Tenant, TenantCreate, TenantSpec, merge_patch
from service.errors import Conflict, InvalidRequest, NotFound
from service.events import EventBus
from service.redis_client import load_script

_PATCHABLE = ("name", "disabled", "sandbox", "policy", "metadata", "budget")


class TenantStore:
    def __init__(self, redis: Redis, bus: EventBus, *, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._bus = bus
        self._clock = clock
        self._rotate = load_script(redis, "service.tenants", "rotate.lua")
        self._forgetters: list[Callable[[str], Awaitable[object]]] = []

    def forget_with(self, forget: Callable[[str], Awaitable[object]]) -> None:
        """Run ``forget(tenant_id)`` when a tenant is deleted: what a feature keeps under the tenant's id that would
        answer a new tenant created under the same id (its cache, its delivery list) goes with it."""
        self._forgetters.append(forget)

    def now(self) -> float:
        return self._clock()

    # Tenants

    async def create_tenant(self, spec: TenantCreate) -> Tenant:
        now = self._clock()
        tenant = Tenant(**spec.model_dump(), uid=uuid.uuid4().hex, created_at=now, updated_at=now)
        if not await self._redis.set(keys.tenant(spec.id), tenant.model_dump_json(), nx=True):
            raise Conflict(f"Tenant '{spec.id}' already exists")
        await self._redis.sadd(keys.tenant_index(), spec.id)
        return tenant

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        if not is_valid_tenant_id(tenant_id):
            return None
        raw = await self._redis.get(keys.tenant(tenant_id))
        return Tenant.model_validate_json(raw) if raw else None

    async def require_tenant(self, tenant_id: str) -> Tenant:
        tenant = await self.get_tenant(tenant_id)
        if tenant is None:
            raise NotFound(f"Tenant '{tenant_id}' not found", error_type="tenant_not_found")
        return tenant

    async def list_tenants(self) -> list[Tenant]:
        ids = sorted(cast("set[str]", await self._redis.smembers(keys.tenant_index())))
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:  # not MGET: the tenants' keys span cluster slots
            for tenant_id in ids:
                pipe.get(keys.tenant(tenant_id))
            raws = await pipe.execute()
        return [Tenant.model_validate_json(raw) for raw in raws if raw]

    async def update_tenant(self, tenant_id: str, patch: dict[str, Any]) -> Tenant:
        """Apply an RFC 7396 merge patch to the tenant's spec. Concurrent updates never lose each other's changes."""
        unknown = sorted(set(patch) - set(_PATCHABLE))
        if unknown:
            raise InvalidRequest(
                [
                    {
                        "type": "extra_forbidden",
                        "loc": ["body", name],
                        "msg": f"Unknown or read-only field; patchable: {', '.join(_PATCHABLE)}",
                        "input": patch[name],
                    }
                    for name in unknown
                ]
            )
        key = keys.tenant(tenant_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    current = await self.require_tenant(tenant_id)
                    updated = _patched(current, patch, self._clock())
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, updated.model_dump_json(), xx=True)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        await self._invalidate(f"tenant:{tenant_id}")
        return updated

    async def delete_tenant(self, tenant_id: str) -> list[str]:
        """Delete the tenant and all its keys (they stop working at once), and what the features registered with
        :meth:`forget_with` keep for it. Its request history stays for the operator until it expires on its own
        (a new tenant under the same id has another uid and never sees it). Returns the deleted key ids."""
        await self.require_tenant(tenant_id)
        key_ids = sorted(cast("set[str]", await self._redis.smembers(keys.tenant_keys(tenant_id))))
        await self._redis.delete(keys.tenant(tenant_id), keys.tenant_keys(tenant_id), keys.webhook_secrets(tenant_id))
        if key_ids:
            await self._redis.delete(*[keys.api_key(k) for k in key_ids])
        await self._redis.srem(keys.tenant_index(), tenant_id)
        await self._invalidate(f"tenant:{tenant_id}", *[f"key:{k}" for k in key_ids])
        for forget in self._forgetters:
            await forget(tenant_id)
        return key_ids

    # Keys

    async def create_key(
        self, tenant_id: str, *, name: str | None = None, expires_at: float | None = None
    ) -> tuple[IssuedKey, ApiKeyRecord]:
        await self.require_tenant(tenant_id)
        issued = generate_key()
        record = ApiKeyRecord(
            key_id=issued.key_id,
            tenant_id=tenant_id,
            secret_hash=issued.secret_hash,
            name=name,
            created_at=self._clock(),
            expires_at=expires_at,
        )
        await self._redis.hset(keys.api_key(issued.key_id), mapping=_encode(record.model_dump(exclude_none=True)))
        await self._redis.sadd(keys.tenant_keys(tenant_id), issued.key_id)
        return issued, record

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        raw = cast("dict[str, str]", await self._redis.hgetall(keys.api_key(key_id)))
        return ApiKeyRecord.model_validate({k: json.loads(v) for k, v in raw.items()}) if raw else None

    async def list_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        await self.require_tenant(tenant_id)
        key_ids = sorted(cast("set[str]", await self._redis.smembers(keys.tenant_keys(tenant_id))))
        records = [await self.get_key(k) for k in key_ids]
        return sorted((r for r in records if r is not None), key=lambda r: r.created_at)

    async def revoke_key(self, tenant_id: str, key_id: str) -> ApiKeyRecord:
        record = await self._tenant_key(tenant_id, key_id)
        if record.revoked_at is None:
            await self._redis.hsetnx(keys.api_key(key_id), "revoked_at", json.dumps(self._clock()))
            await self._invalidate(f"key:{key_id}")
        return await self._tenant_key(tenant_id, key_id)

    async def rotate_key(
        self, tenant_id: str, key_id: str, *, grace_seconds: float, name: str | None = None
    ) -> tuple[IssuedKey, ApiKeyRecord, ApiKeyRecord]:
        """Issue a successor and keep the old key valid for ``grace_seconds`` more (never longer than it had).

        Concurrent rotations of one key issue one successor: each creates its successor, then claims the rotation on
        the old key in one script (``lua/rotate.lua``); a refused claim deletes its successor again."""
        old = await self._tenant_key(tenant_id, key_id)
        now = self._clock()
        if old.state(now) is not KeyState.ACTIVE:
            raise Conflict(f"Key '{key_id}' is {old.state(now).value} and cannot be rotated")
        if old.rotated_to is not None:
            raise Conflict(f"Key '{key_id}' was already rotated to '{old.rotated_to}'")
        issued, new = await self.create_key(tenant_id, name=name or old.name, expires_at=old.expires_at)
        grace_end = now + grace_seconds
        old_expiry = grace_end if old.expires_at is None else min(old.expires_at, grace_end)
        answer = cast(
            "list[str]",
            await self._rotate(
                keys=[keys.api_key(key_id)], args=[json.dumps(now), json.dumps(old_expiry), json.dumps(issued.key_id)]
            ),
        )
        if answer[0] != "ok":
            await self._redis.delete(keys.api_key(issued.key_id))
            await self._redis.srem(keys.tenant_keys(tenant_id), issued.key_id)
            raise _rotation_refused(key_id, answer)
        await self._invalidate(f"key:{key_id}")
        return issued, new, await self._tenant_key(tenant_id, key_id)

    async def touch_key(self, key_id: str, now: float) -> None:
        await self._redis.hset(keys.api_key(key_id), "last_used_at", json.dumps(now))

    async def _tenant_key(self, tenant_id: str, key_id: str) -> ApiKeyRecord:
        await self.require_tenant(tenant_id)
        record = await self.get_key(key_id)
        if record is None or record.tenant_id != tenant_id:
            raise NotFound(f"Key '{key_id}' not found", error_type="key_not_found")
        return record

    async def _invalidate(self, *messages: str) -> None:
        for message in messages:
            await self._bus.publish(keys.auth_events_channel(), message)


def _patched(current: Tenant, patch: dict[str, Any], now: float) -> Tenant:
    spec = merge_patch(current.model_dump(mode="json", include=set(_PATCHABLE)), patch)
    try:
        validated = TenantSpec.model_validate(spec)
    except ValidationError as exc:
        raise InvalidRequest(
            [{"type": e["type"], "loc": ["body", *e["loc"]], "msg": e["msg"]} for e in exc.errors(include_url=False)]
        ) from None
    return Tenant(
        **validated.model_dump(), id=current.id, uid=current.uid, created_at=current.created_at, updated_at=now
    )


def _encode(values: dict[str, Any]) -> dict[Any, Any]:
    return {name: json.dumps(value) for name, value in values.items()}


def _rotation_refused(key_id: str, answer: list[str]) -> Conflict | NotFound:
    """The error of a rotation claim ``lua/rotate.lua`` refused: the same as the checks before the claim give."""
    if answer[0] == "missing":
        return NotFound(f"Key '{key_id}' not found", error_type="key_not_found")
    if answer[0] == "rotated":
        return Conflict(f"Key '{key_id}' was already rotated to '{json.loads(answer[1])}'")
    return Conflict(f"Key '{key_id}' is {KeyState(answer[0]).value} and cannot be rotated")
