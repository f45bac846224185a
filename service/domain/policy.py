"""Per-tenant policy: what a tenant may request, and the check that names the rule a request breaks (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.domain.endpoints import ENDPOINTS
from service.domain.schemas import Resolution, TextToVideoInput
from service.domain.urls import MAX_URL_LENGTH, UNRESTRICTED, url_problem

RESOLUTION_RANK = {Resolution.P480: 0, Resolution.P720: 1, Resolution.P1080: 2}


class TenantPolicy(BaseModel):
    """Limits on one tenant. Every field left out (or null) means "no limit"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_endpoints: list[str] | None = Field(default=None, description="Endpoint ids this tenant may call")
    max_resolution: Resolution | None = None
    max_duration: int | None = Field(default=None, ge=4, le=12, description="Longest duration in seconds")
    allow_audio: bool | None = Field(default=None, description="false: requests must set generate_audio false")
    requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    max_concurrent: int | None = Field(default=None, ge=1, le=1_000_000, description="Most unfinished jobs at once")
    cache: bool | None = Field(default=None, description="false: never answer from or write to the cache")
    cache_seedless: bool | None = Field(
        default=None, description="true: also cache requests without a seed (same prompt, same video)"
    )
    cache_namespace: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="Share cached results with every tenant that joins the same namespace",
    )
    cache_ttl_seconds: int | None = Field(default=None, ge=60, description="Cache lifetime for this tenant's entries")
    default_webhook_url: str | None = Field(
        default=None,
        max_length=MAX_URL_LENGTH,
        description="Called when a queued request without its own fal_webhook completes (checked again at submit "
        "and at delivery against the gateway's outbound rules)",
    )

    @field_validator("default_webhook_url")
    @classmethod
    def _webhook_syntax(cls, value: str | None) -> str | None:
        problem = url_problem(value, UNRESTRICTED) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("allowed_endpoints")
    @classmethod
    def _known_endpoints(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - set(ENDPOINTS))
        if unknown:
            raise ValueError(f"unknown endpoint ids: {', '.join(unknown)}")
        return sorted(set(value))


@dataclass(frozen=True, slots=True)
class PolicyViolation:
    """A request outside the tenant's policy: which rule, which input field (if any), and why."""

    rule: str
    message: str
    field: str | None = None


def check_request(policy: TenantPolicy, endpoint_id: str, data: TextToVideoInput) -> PolicyViolation | None:
    """The first rule the request breaks, or None. Rate and concurrency are enforced at admission, not here."""
    if policy.allowed_endpoints is not None and endpoint_id not in policy.allowed_endpoints:
        return PolicyViolation("allowed_endpoints", f"This tenant may not call '{endpoint_id}'")
    if policy.max_resolution is not None and RESOLUTION_RANK[data.resolution] > RESOLUTION_RANK[policy.max_resolution]:
        return PolicyViolation(
            "max_resolution",
            f"Resolution {data.resolution.value} exceeds this tenant's maximum of {policy.max_resolution.value}",
            "resolution",
        )
    if policy.max_duration is not None and data.duration_seconds > policy.max_duration:
        return PolicyViolation(
            "max_duration",
            f"Duration {data.duration_seconds}s exceeds this tenant's maximum of {policy.max_duration}s",
            "duration",
        )
    if policy.allow_audio is False and data.generate_audio:
        return PolicyViolation(
            "allow_audio", 'This tenant may not generate audio; send "generate_audio": false', "generate_audio"
        )
    return None
