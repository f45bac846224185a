"""Bodies of the webhook routes: deliveries and their attempts, secrets, replays (they generate the OpenAPI spec)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from service.domain.tenants import iso
from service.domain.webhooks import Attempt
from service.webhooks.store import Delivery


class AttemptOut(BaseModel):
    at: str | None
    status_code: int | None = Field(description="The receiver's HTTP status; null for a network error or timeout")
    latency_ms: float
    error: str | None
    result: str = Field(description="delivered, retry or final")

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptOut:
        return cls(
            at=iso(attempt.at),
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            error=attempt.error,
            result=attempt.result.value,
        )


class DeliveryOut(BaseModel):
    id: str = Field(description="The delivery id, sent as webhook-id on every attempt and replay")
    tenant_id: str
    request_id: str
    url: str
    state: str = Field(description="pending, delivered or failed (dead-lettered)")
    attempts: int
    created_at: str | None
    next_attempt_at: str | None
    delivered_at: str | None
    last_status: int | None
    last_error: str | None
    replays: int

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(
            id=delivery.id,
            tenant_id=delivery.tenant_id,
            request_id=delivery.request_id,
            url=delivery.url,
            state=delivery.state.value,
            attempts=delivery.attempts,
            created_at=iso(delivery.created_at),
            next_attempt_at=iso(delivery.next_at) if delivery.state.value == "pending" else None,
            delivered_at=iso(delivery.delivered_at),
            last_status=delivery.last_status,
            last_error=delivery.last_error,
            replays=delivery.replays,
        )


class DeliveryDetail(DeliveryOut):
    body: str = Field(description="The exact JSON body delivered and signed")
    history: list[AttemptOut]

    @classmethod
    def detail(cls, delivery: Delivery) -> DeliveryDetail:
        return cls(
            **DeliveryOut.of(delivery).model_dump(),
            body=delivery.body,
            history=[AttemptOut.of(a) for a in delivery.history],
        )


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryOut]
    next: str | None = Field(description="Pass as ?before= for the next, older page")


class SecretOut(BaseModel):
    secret: str = Field(description="whsec_...: shown once; the previous secret keeps signing during the grace")
    previous_valid_until: str | None = Field(description="Until when the previous secret still signs beside it")


class RedeliverSince(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime = Field(description="Replay every failed delivery of the tenant created at or after this time")


class RedeliverOut(BaseModel):
    redelivered: list[str] = Field(description="The delivery ids queued again")
