"""Tenant and API-key records, their validation and lifecycle rules, and JSON merge patch (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.domain.apikeys import TENANT_ID_RE
from service.domain.budgets import Budget
from service.domain.policy import TenantPolicy

MAX_METADATA_BYTES = 16 * 1024


class TenantSpec(BaseModel):
    """The operator-controlled part of a tenant: what ``POST /admin/tenants`` takes and ``PATCH`` changes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    disabled: bool = False
    sandbox: bool = Field(
        default=False,
        description="Served by the gateway's built-in simulator instead of fal, never charged; responses carry "
        "x-gateway-sandbox: true",
    )
    policy: TenantPolicy = Field(default_factory=TenantPolicy)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form tags, at most 16 KiB of JSON")
    budget: Budget | None = Field(default=None, description="Spending limit; none means unlimited")

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")
        return value


class TenantCreate(TenantSpec):
    id: str = Field(pattern=TENANT_ID_RE.pattern, description="Lowercase letters, digits, '-' and '_'; max 63")


class Tenant(TenantSpec):
    """A stored tenant. ``uid`` changes if an id is deleted and created again, so a new tenant with an old id never
    sees the old tenant's requests."""

    id: str
    uid: str
    created_at: float
    updated_at: float


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge recursively, ``null`` removes a member, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


class KeyState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


class ApiKeyRecord(BaseModel):
    """A stored API key: metadata plus the hash of its secret (never the secret)."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    tenant_id: str
    secret_hash: str
    name: str | None = None
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None
    rotated_to: str | None = None

    def state(self, now: float) -> KeyState:
        if self.revoked_at is not None:
            return KeyState.REVOKED
        if self.expires_at is not None and now >= self.expires_at:
            return KeyState.EXPIRED
        return KeyState.ACTIVE

    def public(self, now: float) -> dict[str, Any]:
        """Metadata an operator may see: everything but the secret's hash."""
        return {
            "key_id": self.key_id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "state": self.state(now).value,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
            "rotated_to": self.rotated_to,
        }


def iso(timestamp: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC (``2026-01-01T00:00:00Z``), or None."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
