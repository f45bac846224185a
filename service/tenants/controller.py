"""Operator API for tenants and keys (``/admin``), guarded by the admin token."""

from __future__ import annotations

from typing import Any

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, Field

from service.domain.apikeys import is_valid_tenant_id
from service.errors import InvalidRequest
from service.tenants.auth import requires_admin
from service.tenants.store import TenantStore


class TenantCreate(BaseModel):
    id: str = Field(description="Tenant id: lowercase letters, digits, '-' and '_', at most 63 characters")
    name: str = Field(min_length=1, max_length=200)


class AdminController(Controller):
    path = "/admin"
    guards = [requires_admin]  # noqa: RUF012 - Litestar reads this class attribute
    tags = ["admin"]  # noqa: RUF012

    @post("/tenants", status_code=201)
    async def create_tenant(
        self, data: JSONBody[TenantCreate], tenants: NamedDependency[TenantStore]
    ) -> dict[str, Any]:
        if not is_valid_tenant_id(data.id):
            raise InvalidRequest(
                [
                    {
                        "type": "string_pattern_mismatch",
                        "loc": ["body", "id"],
                        "msg": "Tenant id must match ^[a-z0-9][a-z0-9_-]{0,62}$",
                        "input": data.id,
                    }
                ]
            )
        tenant = await tenants.create_tenant(data.id, data.name)
        return {"id": tenant.id, "name": tenant.name, "disabled": tenant.disabled, "created_at": tenant.created_at}

    @post("/tenants/{tenant_id:str}/keys", status_code=201)
    async def create_key(self, tenant_id: FromPath[str], tenants: NamedDependency[TenantStore]) -> dict[str, str]:
        issued = await tenants.create_key(tenant_id)
        return {"key_id": issued.key_id, "key": issued.token}
