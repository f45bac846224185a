"""Request and response bodies of the admin and tenant self-service APIs (they generate the OpenAPI spec)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.domain.budgets import Budget
from service.domain.policy import TenantPolicy
from service.domain.tenants import ApiKeyRecord, Tenant, iso


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    expires_at: datetime | None = Field(default=None, description="ISO 8601; the key stops working then")


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(ge=0, le=30 * 24 * 3600, description="How long the old key keeps working")
    name: str | None = Field(default=None, max_length=200, description="Name of the successor (default: the old)")


class UsageOut(BaseModel):
    requests_last_minute: int
    in_flight: int


class TenantOut(BaseModel):
    id: str
    name: str
    disabled: bool
    sandbox: bool
    policy: TenantPolicy
    metadata: dict[str, Any]
    budget: Budget | None
    created_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        return cls(
            id=tenant.id,
            name=tenant.name,
            disabled=tenant.disabled,
            sandbox=tenant.sandbox,
            policy=tenant.policy,
            metadata=tenant.metadata,
            budget=tenant.budget,
            created_at=iso(tenant.created_at),
            updated_at=iso(tenant.updated_at),
        )


class TenantDetail(TenantOut):
    """A tenant with its live usage (``GET /admin/tenants/{id}``)."""

    usage: UsageOut


class TenantList(BaseModel):
    tenants: list[TenantOut]


class TenantDeleted(BaseModel):
    id: str
    deleted_keys: list[str]


class KeyOut(BaseModel):
    """Key metadata. Never the secret."""

    key_id: str
    tenant_id: str
    name: str | None
    state: str = Field(description="active, revoked or expired")
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None
    rotated_to: str | None

    @classmethod
    def of(cls, record: ApiKeyRecord, now: float) -> KeyOut:
        return cls.model_validate(record.public(now))


class KeyList(BaseModel):
    keys: list[KeyOut]


class IssuedKeyOut(KeyOut):
    key: str = Field(description="The full key, <key_id>:<secret>. Shown this once; only its hash is stored.")


class RotatedKeyOut(IssuedKeyOut):
    previous: KeyOut


class AuditEntry(BaseModel):
    id: str
    at: str | None
    action: str
    target: str
    actor: dict[str, Any]
    details: dict[str, Any]


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next: str | None = Field(description="Pass as ?before= for the next, older page")


class RequestSummary(BaseModel):
    request_id: str
    tenant_id: str
    endpoint_id: str
    mode: str
    status: str
    outcome: str | None
    error_type: str | None
    created_at: str | None
    completed_at: str | None


class RequestPage(BaseModel):
    requests: list[RequestSummary]
    next: str | None = Field(description="Pass as ?before= for the next, older page")


class MeOut(BaseModel):
    """What a tenant may know about itself."""

    id: str
    name: str
    key_id: str
    sandbox: bool
    policy: TenantPolicy
    metadata: dict[str, Any]
    usage: UsageOut
