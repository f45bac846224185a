"""Operator routes to purge cached results: a tenant's own entries, a shared namespace, or one entry."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete
from litestar.di import NamedDependency
from litestar.params import FromPath

from service.audit import Actor, AuditLog, actor_of
from service.cache.store import ResultCache
from service.config import Settings
from service.domain.apikeys import is_valid_tenant_id
from service.domain.cachekeys import scope_of
from service.errors import NotFound
from service.tenants.auth import requires_admin
from service.tenants.store import TenantStore

AnyRequest = Request[Any, Any, Any]


class CacheAdminController(Controller):
    path = "/admin"
    guards = [requires_admin]  # noqa: RUF012 - Litestar reads this class attribute
    tags = ["admin", "cache"]  # noqa: RUF012

    @delete("/tenants/{tenant_id:str}/cache", status_code=200)
    async def purge_tenant(
        self,
        request: AnyRequest,
        tenant_id: FromPath[str],
        tenants: NamedDependency[TenantStore],
        result_cache: NamedDependency[ResultCache],
        audit: NamedDependency[AuditLog],
        settings: NamedDependency[Settings],
    ) -> dict[str, Any]:
        """Purge the tenant's own entries, real and sandbox (entries shared in a namespace are purged through the
        namespace)."""
        await tenants.require_tenant(tenant_id)
        removed = await result_cache.purge_tenant(tenant_id)
        await audit.record(_actor(request, settings), "cache.purge_tenant", tenant_id, {"removed": removed})
        return {"tenant_id": tenant_id, "removed": removed}

    @delete("/cache/namespaces/{namespace:str}", status_code=200)
    async def purge_namespace(
        self,
        request: AnyRequest,
        namespace: FromPath[str],
        result_cache: NamedDependency[ResultCache],
        audit: NamedDependency[AuditLog],
        settings: NamedDependency[Settings],
    ) -> dict[str, Any]:
        if not is_valid_tenant_id(namespace):
            raise NotFound("Namespace not found", error_type="namespace_not_found")
        removed = sum([await result_cache.purge_scope(scope_of("", namespace, sandbox=s)) for s in (False, True)])
        await audit.record(_actor(request, settings), "cache.purge_namespace", namespace, {"removed": removed})
        return {"namespace": namespace, "removed": removed}

    @delete("/cache/entries/{cache_key:str}", status_code=200)
    async def purge_entry(
        self,
        request: AnyRequest,
        cache_key: FromPath[str],
        result_cache: NamedDependency[ResultCache],
        audit: NamedDependency[AuditLog],
        settings: NamedDependency[Settings],
    ) -> dict[str, Any]:
        """Purge one entry by the key reported in a response's ``x-gateway-cache-key`` header."""
        if not await result_cache.purge(cache_key):
            raise NotFound("No cached entry with this key", error_type="cache_entry_not_found")
        await audit.record(_actor(request, settings), "cache.purge_entry", cache_key)
        return {"cache_key": cache_key, "removed": 1}


def _actor(request: AnyRequest, settings: Settings) -> Actor:
    return actor_of(request, trusted_proxy_hops=settings.trusted_proxy_hops)
