"""Webhook deliveries (pure): fal's payload, the two signature schemes' signed content, and the retry rules.

The payload is fal's (docs/protocol.md §9), so handlers written for fal's callbacks work unchanged; every delivery
is signed both the way fal signs (Ed25519 over ``{request_id}\\n{user_id}\\n{timestamp}\\n{sha256_hex(body)}``) and
the Standard Webhooks way (HMAC-SHA256 over ``{webhook_id}.{timestamp}.{body}``). See docs/webhooks.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service.domain.jobs import Job, Outcome

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
_DELIVERY_NAMESPACE = uuid.UUID("5f8b1d2e-7c3a-4e9b-9a61-0d2f4c8e7b10")
RETRYABLE_STATUSES = frozenset({408, 425, 429})
JITTER = 0.1  # each delay is stretched or shrunk by up to 10 %, so retries of many deliveries do not march in step


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt used, or a final refusal: dead-lettered, replayable by an operator


def delivery_id(request_id: str) -> str:
    """The delivery's id (``webhook-id``): one per request, the same on every attempt and every replay."""
    return f"msg_{uuid.uuid5(_DELIVERY_NAMESPACE, request_id).hex}"


def fal_payload(job: Job) -> dict[str, Any]:
    """fal's callback body for a completed job, under the gateway's request id."""
    body: dict[str, Any] = {"request_id": job.request_id, "gateway_request_id": job.request_id}
    if job.outcome is Outcome.OK:
        return body | {"status": "OK", "payload": job.result}
    error_body = job.error_body if job.error_body is not None else {"detail": job.error, "error_type": job.error_type}
    return body | {"status": "ERROR", "error": job.error or "Request failed", "payload": error_body}


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The exact bytes delivered (and signed). A payload that is not JSON becomes ``payload: null`` with
    ``payload_error``, as fal does."""
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        fallback = {**payload, "payload": None, "payload_error": f"payload could not be serialised: {exc}"}
        return json.dumps(fallback, separators=(",", ":"), default=str).encode()


def fal_signed_content(request_id: str, user_id: str, timestamp: int, body: bytes) -> bytes:
    """What fal's scheme signs with Ed25519 (hex in ``X-Fal-Webhook-Signature``)."""
    return f"{request_id}\n{user_id}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()


def new_secret(random_bytes: bytes) -> str:
    """A tenant's Standard Webhooks secret: ``whsec_`` and the base64 of 24 or more random bytes."""
    return SECRET_PREFIX + base64.b64encode(random_bytes).decode()


def standard_signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64 HMAC-SHA256>`` entry of the ``webhook-signature`` header."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def standard_signatures(secrets: Sequence[str], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The header value: one signature per live secret (the current one and, during a rotation's grace, the
    previous one), space-separated as the specification allows."""
    return " ".join(standard_signature(secret, webhook_id, timestamp, body) for secret in secrets)


def parse_schedule(text: str) -> tuple[float, ...]:
    """``GATEWAY_WEBHOOK_RETRY_SCHEDULE``: seconds between attempts, comma-separated."""
    delays = tuple(float(part) for part in text.split(",") if part.strip())
    if not delays or any(delay < 0 for delay in delays):
        raise ValueError("the retry schedule needs at least one non-negative delay")
    return delays


class AttemptResult(StrEnum):
    DELIVERED = "delivered"  # 2xx
    RETRY = "retry"  # network error, timeout, 408, 425, 429, 5xx
    FINAL = "final"  # any other answer, or a destination the guard refuses


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one delivery, as the delivery log shows it."""

    at: float
    status_code: int | None
    latency_ms: float
    error: str | None
    result: AttemptResult


def classify(status_code: int | None) -> AttemptResult:
    """``None`` is a network error or a timeout: always worth another try."""
    if status_code is None or status_code >= 500 or status_code in RETRYABLE_STATUSES:
        return AttemptResult.RETRY
    if 200 <= status_code < 300:
        return AttemptResult.DELIVERED
    return AttemptResult.FINAL  # other 4xx, and 3xx (redirects are never followed)


def next_delay(
    attempts_made: int,
    schedule: Sequence[float],
    *,
    retry_after: float | None = None,
    retry_after_cap: float,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` attempts, or None when the schedule is used up.

    A receiver's ``Retry-After`` (capped) replaces the scheduled delay when it asks for longer."""
    if attempts_made > len(schedule):
        return None
    delay = schedule[attempts_made - 1] * (1 + JITTER * (2 * rand() - 1))
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry_after_cap))
    return max(0.0, delay)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the delta-seconds form; an HTTP date is ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
