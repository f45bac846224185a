"""The simulator's fal webhooks (docs/protocol.md §9): signing key and JWKS, payload, signed delivery with retries."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from service.domain.webhooks import encode_payload, fal_signed_content
from service.simulator.faults import FaultBook, FaultRule
from service.simulator.jobs import Failure, Job, Success, output_body

logger = structlog.get_logger(__name__)

RETRY_DELAYS = (0.5, 2.0)  # seconds on the simulator clock before the 2nd and the 3rd attempt; then it gives up
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
STALE_SECONDS = 600  # how far in the past a `stale` fault dates a delivery
DELIVERY_LOG_SIZE = 1000  # deliveries kept for stats(), newest last
_SEED = re.compile(r"[A-Za-z0-9_-]{43}=?")  # 32 bytes in base64url, padding optional

REQUEST_ID_HEADER = "X-Fal-Webhook-Request-Id"
USER_ID_HEADER = "X-Fal-Webhook-User-Id"
TIMESTAMP_HEADER = "X-Fal-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Fal-Webhook-Signature"


def key_from_seed(seed: str) -> Ed25519PrivateKey:
    """The Ed25519 key of a base64url 32-byte seed (padding optional); ValueError for anything else."""
    if not _SEED.fullmatch(seed):
        raise ValueError("an Ed25519 seed is 32 bytes in base64url (43 characters, padding optional)")
    return Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(seed.rstrip("=") + "="))


def public_jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    """The key's public half as an OKP JWK, its ``kid`` the RFC 7638 thumbprint."""
    x = _b64url(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": _b64url(hashlib.sha256(canonical.encode()).digest())}


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a ``fal_webhook``, or None when it is an absolute http(s) URL."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError:
        return "Input should be a valid URL"
    if parts.scheme not in {"http", "https"} or not parts.hostname or any(c.isspace() for c in url):
        return "Input should be an absolute http or https URL"
    return None


def fal_webhook_body(job: Job, outcome: Success | Failure, base_url: str) -> dict[str, Any]:
    """fal's callback body for a completed job: its output on success, its error status and body otherwise."""
    ids = {"request_id": job.id, "gateway_request_id": job.id}
    if isinstance(outcome, Failure):
        return ids | {"status": "ERROR", "error": f"Invalid status code: {outcome.status}", "payload": outcome.body}
    return ids | {"status": "OK", "payload": output_body(job, outcome, base_url)}


def signed_headers(
    key: Ed25519PrivateKey, request_id: str, user_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers of one delivery of ``body``, signed the way fal signs."""
    signature = key.sign(fal_signed_content(request_id, user_id, timestamp, body)).hex()
    return {
        "Content-Type": "application/json",
        REQUEST_ID_HEADER: request_id,
        USER_ID_HEADER: user_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature,
    }


@dataclass(frozen=True, slots=True)
class Sender:
    """What a round of deliveries needs from the simulator: its clocks, key, user id, faults and way out."""

    clock: Callable[[], float]
    wall_time: Callable[[float], float]
    key: Ed25519PrivateKey
    user_id: str
    faults: FaultBook
    transport: httpx.AsyncBaseTransport | None  # None: the network
    timeout: float


@dataclass(slots=True, eq=False)
class _Pending:
    job: Job
    url: str
    base_url: str
    attempts: int = 0
    retry_at: float | None = None
    fault: FaultRule | None = None

    def due_outcome(self, now: float) -> Success | Failure | None:
        """How the job ended, once it has and any retry's backoff is over; None while the webhook is not due."""
        return self.job.result(now) if self.retry_at is None or now >= self.retry_at else None


class WebhookOutbox:
    """Webhooks waiting for their job to complete (or for a retry), and the log of what was sent."""

    def __init__(self) -> None:
        self._pending: list[_Pending] = []
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=DELIVERY_LOG_SIZE)

    def add(self, job: Job, url: str, base_url: str) -> None:
        """Call ``url`` once ``job`` completes; ``base_url`` is the base of its output URLs (see ``output_body``)."""
        self._pending.append(_Pending(job, url, base_url))

    def clear(self) -> None:
        self._pending.clear()
        self.deliveries.clear()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def deliver_due(self, sender: Sender) -> int:
        """Make every attempt that is due now, concurrently; returns how many webhooks were attempted.

        Due webhooks leave the outbox before the first await, so overlapping rounds never send one twice.
        """
        now = sender.clock()
        due = [(p, outcome) for p in self._pending if (outcome := p.due_outcome(now)) is not None]
        if not due:
            return 0
        due.sort(key=lambda item: (item[0].job.ended_at, item[0].job.seq))
        self._pending = [p for p in self._pending if p.due_outcome(now) is None]
        # Never follow a redirect: a receiver's 3xx is a failed attempt, as any other non-2xx answer.
        client = httpx.AsyncClient(transport=sender.transport, timeout=sender.timeout, follow_redirects=False)
        try:
            await asyncio.gather(*(self._attempt(client, p, outcome, sender, now) for p, outcome in due))
        finally:
            if sender.transport is None:  # an injected transport belongs to whoever injected it
                await client.aclose()
        return len(due)

    async def _attempt(
        self, client: httpx.AsyncClient, pending: _Pending, outcome: Success | Failure, sender: Sender, now: float
    ) -> None:
        job = pending.job
        if pending.attempts == 0:
            pending.fault = sender.faults.take("webhook", job.endpoint.id)
        pending.attempts += 1
        kind = None if pending.fault is None else pending.fault.kind
        if kind == "drop":
            self._record(pending, None, "dropped by fault")
            return
        body = encode_payload(fal_webhook_body(job, outcome, pending.base_url))
        timestamp = int(sender.wall_time(now)) - (STALE_SECONDS if kind == "stale" else 0)
        key = Ed25519PrivateKey.generate() if kind == "bad_signature" else sender.key
        headers = signed_headers(key, job.id, sender.user_id, timestamp, body)
        results = [await self._send(client, pending, body, headers) for _ in range(2 if kind == "duplicate" else 1)]
        if any(results):
            return
        if pending.attempts < MAX_ATTEMPTS:
            pending.retry_at = sender.clock() + RETRY_DELAYS[pending.attempts - 1]
            self._pending.append(pending)
        else:
            logger.warning("simulator_webhook_given_up", request_id=job.id, url=pending.url, attempts=pending.attempts)

    async def _send(self, client: httpx.AsyncClient, pending: _Pending, body: bytes, headers: dict[str, str]) -> bool:
        """One POST; whether the receiver took it (2xx)."""
        try:
            response = await client.post(pending.url, content=body, headers=headers)
        except Exception as exc:  # noqa: BLE001 - network errors, and an in-process receiver's own exceptions
            self._record(pending, None, f"{type(exc).__name__}: {exc}")
            return False
        self._record(pending, response.status_code, None)
        return response.is_success

    def _record(self, pending: _Pending, status_code: int | None, error: str | None) -> None:
        self.deliveries.append(
            {
                "request_id": pending.job.id,
                "url": pending.url,
                "attempt": pending.attempts,
                "status_code": status_code,
                "error": error,
                "fault": None if pending.fault is None else pending.fault.kind,
            }
        )
        logger.info(
            "simulator_webhook_sent" if error is None else "simulator_webhook_failed",
            request_id=pending.job.id,
            url=pending.url,
            attempt=pending.attempts,
            status_code=status_code,
            error=error,
        )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
