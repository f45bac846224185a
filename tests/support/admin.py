"""Admin token, fal key and auth headers of the in-process gateways, and tenants created through the admin API."""

from __future__ import annotations

from typing import Any

import httpx

ADMIN_TOKEN = "admin-token-for-tests"
FAL_KEY = "fal-key-for-tests"
ADMIN: dict[str, str] = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def key_auth(key: str) -> dict[str, str]:
    """The headers a tenant sends with ``key``."""
    return {"Authorization": f"Key {key}"}


async def create_tenant(client: httpx.AsyncClient, tenant_id: str = "acme", **fields: Any) -> dict[str, Any]:
    """Create the tenant through the admin API; ``fields`` are the rest of its body (name, policy, budget)."""
    created = await client.post(
        "/admin/tenants", json={"id": tenant_id, "name": tenant_id.title(), **fields}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    tenant: dict[str, Any] = created.json()
    return tenant


async def issue_key(client: httpx.AsyncClient, tenant_id: str = "acme") -> str:
    """A fresh key for the tenant, through the admin API."""
    issued = await client.post(f"/admin/tenants/{tenant_id}/keys", headers=ADMIN)
    assert issued.status_code == 201, issued.text
    key: str = issued.json()["key"]
    return key


async def tenant_key(client: httpx.AsyncClient, tenant_id: str = "acme", **fields: Any) -> str:
    """Create the tenant and issue it a key."""
    await create_tenant(client, tenant_id, **fields)
    return await issue_key(client, tenant_id)
