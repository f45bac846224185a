"""The bodies of the gateway's own routes whose handlers build plain dicts: the estimate, budgets, cache purges, the
whole request record, the JWKS and the storage answers. Only the OpenAPI document uses these models; the fuzz
(``tests/api/test_fuzz.py``) checks every answer against them, so they cannot drift from the handlers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.domain.budgets import Charge
from service.domain.schemas import AspectRatio, Resolution


class Estimate(BaseModel):
    """``POST /v1/estimate/{endpoint_id}``: what a submit of this body would reserve (docs/pricing.md)."""

    endpoint_id: str
    tokens: int = Field(description="Video tokens: width x height x fps x duration / 1024.")
    cost_micros: int = Field(description="The amount a submit reserves, in micro-USD.")
    cost_usd: str = Field(description="The same amount in USD, six decimals.", examples=["0.259200"])
    width: int
    height: int
    frames: int
    audio: bool
    resolution: Resolution
    aspect_ratio: AspectRatio
    tenant_id: str


class BreakdownRow(BaseModel):
    endpoint_id: str
    resolution: str
    audio: bool
    requests: int
    cost_micros: int
    cost_usd: str


class BudgetUsage(BaseModel):
    """A tenant's budget and spend in the current period (``null`` limits: no budget)."""

    tenant_id: str
    period: str = Field(examples=["monthly"])
    period_id: str
    period_start: str | None
    period_end: str | None
    limit_micros: int | None
    soft_limit_micros: int | None
    spent_micros: int
    reserved_micros: int
    remaining_micros: int | None
    limit_usd: str | None
    spent_usd: str
    reserved_usd: str
    remaining_usd: str | None
    breakdown: list[BreakdownRow] = Field(description="Spend per endpoint, resolution and audio.")


class ChargePage(BaseModel):
    tenant_id: str
    period_id: str
    charges: list[Charge] = Field(description="Newest first.")
    next: str | None = Field(description="Pass as ?before= for the next, older page.")


class TenantCachePurged(BaseModel):
    tenant_id: str
    removed: int


class NamespaceCachePurged(BaseModel):
    namespace: str
    removed: int


class CacheEntryPurged(BaseModel):
    cache_key: str
    removed: int


class RequestRecordDetail(BaseModel):
    """What ``GET /admin/requests/{request_id}`` adds to the request's summary."""

    input: dict[str, Any] = Field(description="The validated input, every default filled in.")
    logs: list[dict[str, Any]]
    result: dict[str, Any] | None
    error: str | None
    error_status: int | None
    error_body: Any = Field(description="The failed request's error body, as its result answers it.")
    webhook_url: str | None
    inference_time: float | None


class Jwk(BaseModel):
    kty: str = Field(examples=["OKP"])
    crv: str = Field(examples=["Ed25519"])
    x: str
    kid: str
    use: str = Field(examples=["sig"])
    alg: str = Field(examples=["EdDSA"])


class Jwks(BaseModel):
    """The public keys of the gateway's fal-style webhook signatures, the signer first."""

    keys: list[Jwk]


class UploadInitiated(BaseModel):
    upload_url: str = Field(description="The gateway's: one PUT of the file's bytes, no key needed.")
    file_url: str = Field(description="The file's URL once uploaded, to use as image_url.")


class UploadToken(BaseModel):
    token: str
    token_type: str = Field(examples=["Bearer"])
    base_url: str = Field(description="Where to upload with the token (the gateway's /cdn).")
    expires_at: str


class CdnUploaded(BaseModel):
    """fal's CDN answer, passed through."""

    model_config = ConfigDict(extra="allow")

    access_url: str = Field(description="The file's URL, to use as image_url.")


class Uploaded(BaseModel):
    """``{}``: the upload is stored (both clients look only at the status)."""

    model_config = ConfigDict(extra="forbid")


GATEWAY_BODIES: tuple[type[BaseModel], ...] = (
    Estimate,
    BudgetUsage,
    ChargePage,
    TenantCachePurged,
    NamespaceCachePurged,
    CacheEntryPurged,
    RequestRecordDetail,
    Jwks,
    UploadInitiated,
    UploadToken,
    CdnUploaded,
    Uploaded,
)
