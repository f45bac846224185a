"""Operator API (``/admin``, admin token): tenants, keys and the audit log; and the tenant's own view of itself
(``/v1/me``, tenant key). Request history is ``service/jobs/history.py``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from service.audit import Actor, AuditLog, actor_of, is_cursor
from service.config import Settings
from service.domain.tenants import TenantCreate, iso
from service.errors import InvalidRequest
from service.tenants.admission import Admission
from service.tenants.auth import Principal, requires_admin
from service.tenants.schemas import (
    AuditEntry,
    AuditPage,
    IssuedKeyOut,
    KeyCreate,
    KeyList,
    KeyOut,
    KeyRotate,
    MeOut,
    RotatedKeyOut,
    TenantDeleted,
    TenantDetail,
    TenantList,
    TenantOut,
    UsageOut,
)
from service.tenants.store import TenantStore

AnyRequest = Request[Any, Any, Any]
TENANT = "/tenants/{tenant_id:str}"


class AdminController(Controller):
    path = "/admin"
    guards = [requires_admin]  # noqa: RUF012 - Litestar reads this class attribute
    tags = ["admin"]  # noqa: RUF012

    @post("/tenants", status_code=201)
    async def create_tenant(
        self,
        request: AnyRequest,
        data: JSONBody[TenantCreate],
        tenants: NamedDependency[TenantStore],
        audit: NamedDependency[AuditLog],
        settings: NamedDependency[Settings],
    ) -> TenantOut:
        tenant = await tenants.create_tenant(data)
        await audit.record(_actor(request, settings), "tenant.create", tenant.id, data.model_dump(mode="json"))
        return TenantOut.of(tenant)

    @get("/tenants")
    async def list_tenants(self, tenants: NamedDependency[TenantStore]) -> TenantList:
        return TenantList(tenants=[TenantOut.of(t) for t in await tenants.list_tenants()])

    @get(TENANT)
    async def show_tenant(
        self, tenant_id: FromPath[str], tenants: NamedDependency[TenantStore], admission: NamedDependency[Admission]
    ) -> TenantDetail:
        tenant = await tenants.require_tenant(tenant_id)
        usage = await admission.usage(tenant_id)
        return TenantDetail(
            **TenantOut.of(tenant).model_dump(),
            usage=UsageOut(requests_last_minute=usage.requests_last_minute, in_flight=usage.in_flight),
        )

    @patch(TENANT)
    async def update_tenant(
        self,
        request: AnyRequest,
        tenant_id: FromPath[str],
        data: JSONBody[dict[str, Any]],
        tenants: NamedDependency[TenantStore],
        audit: NamedDependency[AuditLog],
        settings: NamedDependency[Settings],
    ) -> TenantOut:
        tenant = await tenants.update_tenant(tenant_id, data)
        await audit.record(_actor(request, settings), "tenant.update", tenant_id, {"patch": data})
        return TenantOut.of(tenant)

    @delete(TENANT, status_code=200)
    async def delete_tenant(
        self,
        request: AnyRequest,
        tenant_id: FromPath[str],
        tenants: NamedDependency[TenantStore],
        audit: NamedDependency[AuditLog],
        settings: NamedDependency[Settings],
    ) -> TenantDeleted:
        deleted = await tenants.delete_tenant(tenant_id)
        await audit.record(_actor(request, settings), "tenant.delete", tenant_id, {"deleted_keys": deleted})
        return TenantDeleted(id=tenant_id, deleted_keys=deleted)

    @post(f"{TENANT}/keys", status_code=201)
    async def create_key(
        self,
        request: AnyRequest,
        tenant_id: FromPath[str],
        tenants: NamedDependency[TenantStore],
        audit: NamedDependency[AuditLog],
        settings: NamedDependency[Settings],
        data: JSONBody[KeyCreate | None] = None,
    ) -> IssuedKeyOut:
        """The body is optional: no body means an unnamed key that never expires."""
        body = data or KeyCreate()
        expires = _future_timestamp(body.expires_at, tenants.now())
        issued, record = await tenants.create_key(tenant_id, name=body.name, expires_at=expires)
        await audit.record(
            _actor(request, settings),
            "key.create",
            f"{tenant_id}/{issued.key_id}",
            {"name": body.name, "expires_at": iso(expires)},
        )
        return IssuedKeyOut(**KeyOut.of(record, tenants.now()).model_dump(), key=issued.token)

    @get(f"{TENANT}/keys")
    async def list_keys(self, tenant_id: FromPath[str], tenants: NamedDependency[TenantStore]) -> KeyList:
        now = tenants.now()
        return KeyList(keys=[KeyOut.of(r, now) for r in await tenants.list_keys(tenant_id)])

    @delete(f"{TENANT}/keys/{{key_id:str}}", status_code=200)
    async def revoke_key(
        self,
        request: AnyRequest,
        tenant_id: FromPath[str],
        key_id: FromPath[str],
        tenants: NamedDependency[TenantStore],
        audit: NamedDependency[AuditLog],
        settings: NamedDependency[Settings],
    ) -> KeyOut:
        record = await tenants.revoke_key(tenant_id, key_id)
        await audit.record(_actor(request, settings), "key.revoke", f"{tenant_id}/{key_id}")
        return KeyOut.of(record, tenants.now())

    @post(f"{TENANT}/keys/{{key_id:str}}/rotate", status_code=201)
    async def rotate_key(
        self,
        request: AnyRequest,
        tenant_id: FromPath[str],
        key_id: FromPath[str],
        data: JSONBody[KeyRotate],
        tenants: NamedDependency[TenantStore],
        audit: NamedDependency[AuditLog],
        settings: NamedDependency[Settings],
    ) -> RotatedKeyOut:
        issued, new, old = await tenants.rotate_key(tenant_id, key_id, grace_seconds=data.grace_seconds, name=data.name)
        await audit.record(
            _actor(request, settings),
            "key.rotate",
            f"{tenant_id}/{key_id}",
            {"successor": issued.key_id, "grace_seconds": data.grace_seconds},
        )
        now = tenants.now()
        return RotatedKeyOut(**KeyOut.of(new, now).model_dump(), key=issued.token, previous=KeyOut.of(old, now))

    @get("/audit")
    async def audit_log(
        self, audit: NamedDependency[AuditLog], limit: FromQuery[int] = 100, before: FromQuery[str | None] = None
    ) -> AuditPage:
        if before and not is_cursor(before):
            raise InvalidRequest(
                [
                    {
                        "type": "value_error",
                        "loc": ["query", "before"],
                        "msg": "before must be the cursor of a previous page (an audit entry id)",
                        "input": before,
                    }
                ]
            )
        entries, cursor = await audit.read(limit=max(1, min(limit, 1000)), before=before)
        return AuditPage(entries=[AuditEntry.model_validate(e) for e in entries], next=cursor)


class SelfServiceController(Controller):
    path = "/v1"
    tags = ["tenant"]  # noqa: RUF012

    @get("/me")
    async def me(self, principal: NamedDependency[Principal], admission: NamedDependency[Admission]) -> MeOut:
        """The calling tenant's own policy, limits and current usage (never another tenant's)."""
        usage = await admission.usage(principal.tenant_id)
        tenant = principal.tenant
        return MeOut(
            id=tenant.id,
            name=tenant.name,
            key_id=principal.key_id,
            sandbox=tenant.sandbox,
            policy=tenant.policy,
            metadata=tenant.metadata,
            usage=UsageOut(requests_last_minute=usage.requests_last_minute, in_flight=usage.in_flight),
        )


def _actor(request: AnyRequest, settings: Settings) -> Actor:
    return actor_of(request, trusted_proxy_hops=settings.trusted_proxy_hops)


def _future_timestamp(moment: datetime | None, now: float) -> float | None:
    """An expiry as epoch seconds; a time without an offset is UTC, and one in the past is refused."""
    if moment is None:
        return None
    timestamp = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if timestamp <= now:
        raise InvalidRequest(
            [
                {
                    "type": "value_error",
                    "loc": ["body", "expires_at"],
                    "msg": "expires_at must be in the future",
                    "input": moment.isoformat(),
                }
            ]
        )
    return timestamp
