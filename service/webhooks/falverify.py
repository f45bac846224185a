"""Verification of fal's own (inbound) webhooks: fal's JWKS, fetched and cached, and the header and signature checks.

fal signs ``{request_id}\\n{user_id}\\n{timestamp}\\n{sha256_hex(body)}`` with Ed25519 (docs/protocol.md §9); a
delivery is genuine if any Ed25519 key of fal's JWKS verifies its signature and its timestamp is within the
tolerance of now. The JWKS is cached for at most ``cache_seconds``; a signature no cached key verifies triggers one
refetch (at most once a minute, so forged deliveries cannot make the gateway hammer fal) in case fal rotated.
Replays are refused by the receiver, keyed by :func:`replay_key`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from service.domain.webhooks import fal_signed_content
from service.webhooks.signing import b64url_decode

log = structlog.get_logger(__name__)

REQUEST_ID = "x-fal-webhook-request-id"
USER_ID = "x-fal-webhook-user-id"
TIMESTAMP = "x-fal-webhook-timestamp"
SIGNATURE = "x-fal-webhook-signature"
REFETCH_INTERVAL_SECONDS = 60.0
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_SIGNATURE = re.compile(r"[0-9A-Fa-f]{128}")
_PUBLIC_KEY_BYTES = 32


class WebhookRefused(Exception):
    """A delivery that is not (provably) fal's; ``reason`` is one of ``missing_headers``, ``bad_timestamp``,
    ``stale``, ``bad_signature``, ``jwks_unavailable``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FalWebhook:
    """A verified delivery's signed headers."""

    request_id: str
    user_id: str
    timestamp: int
    signature: bytes


def replay_key(webhook: FalWebhook) -> str:
    """Hex sha256 of the signature's bytes: the same for every copy of one delivery, however its hex was spelled."""
    return hashlib.sha256(webhook.signature).hexdigest()


def parse_jwks(document: Any) -> list[Ed25519PublicKey]:
    """The Ed25519 signing keys of a JWKS document; keys of other types or uses are skipped."""
    found: list[Ed25519PublicKey] = []
    entries = document.get("keys") if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", "EdDSA") not in {"EdDSA", "Ed25519"}:
            continue
        x = entry.get("x")
        try:
            raw = b64url_decode(x) if isinstance(x, str) else b""
        except ValueError:
            continue
        if len(raw) == _PUBLIC_KEY_BYTES:
            found.append(Ed25519PublicKey.from_public_bytes(raw))
    return found


class _Unavailable(Exception):
    pass


class FalJwks:
    """fal's public keys, fetched from ``url`` and cached; :meth:`verify` checks one delivery against them."""

    def __init__(
        self, client: httpx.AsyncClient, url: str, *, cache_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._url = url
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._keys: list[Ed25519PublicKey] = []
        self._fetched_at: float | None = None  # of the cached keys
        self._attempted_at: float | None = None  # of the last fetch, failed or not
        self._attempts = 0  # fetches completed, failed or not
        self._failed = False  # the last one failed
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._fetched_at is not None and self._clock() - self._fetched_at < self._cache_seconds

    async def _fetch(self) -> None:
        try:
            answer = await self._client.get(self._url, headers={"accept": "application/json"})
            answer.raise_for_status()
            found = parse_jwks(answer.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("fal_jwks_unavailable", url=self._url, error=type(exc).__name__)
            raise _Unavailable from exc
        if not found:
            log.warning("fal_jwks_unavailable", url=self._url, error="no Ed25519 signing key")
            raise _Unavailable
        self._keys, self._fetched_at = found, self._clock()

    async def _refresh(self, *, seen_attempts: int) -> None:
        """Fetch, unless another caller fetched while this one waited for the lock (then share its outcome)."""
        async with self._lock:
            if self._attempts != seen_attempts:
                if self._failed and not self._fresh():
                    raise _Unavailable
                return
            self._attempted_at = self._clock()
            # A completed attempt (not a cancelled one) is counted: callers that waited for it share its outcome.
            try:
                await self._fetch()
            except _Unavailable:
                self._failed = True
                self._attempts += 1
                raise
            self._failed = False
            self._attempts += 1

    async def public_keys(self) -> list[Ed25519PublicKey]:
        """The cached keys, fetched first when there are none or they are older than ``cache_seconds``.
        Raises WebhookRefused("jwks_unavailable") if they cannot be fetched."""
        if not self._fresh():
            try:
                await self._refresh(seen_attempts=self._attempts)
            except _Unavailable:
                raise WebhookRefused("jwks_unavailable") from None
        return list(self._keys)

    async def _refetch_for_unknown_key(self) -> list[Ed25519PublicKey] | None:
        """New keys if fal may have rotated and no fetch happened in the last minute; None otherwise."""
        if self._attempted_at is not None and self._clock() - self._attempted_at < REFETCH_INTERVAL_SECONDS:
            return None
        seen = self._attempts
        try:
            await self._refresh(seen_attempts=seen)
        except _Unavailable:
            return None
        return list(self._keys)

    async def verify(
        self, headers: Mapping[str, str], body: bytes, *, now: float, tolerance_seconds: float
    ) -> FalWebhook:
        """The delivery's signed headers if fal signed ``body``; WebhookRefused(reason) otherwise."""
        lowered = {name.lower(): value for name, value in headers.items()}
        request_id, user_id = lowered.get(REQUEST_ID), lowered.get(USER_ID)
        timestamp_text, signature_text = lowered.get(TIMESTAMP), lowered.get(SIGNATURE)
        if not (request_id and user_id and timestamp_text and signature_text):
            raise WebhookRefused("missing_headers")
        timestamp_text, signature_text = timestamp_text.strip(), signature_text.strip()
        if not _TIMESTAMP.fullmatch(timestamp_text):
            raise WebhookRefused("bad_timestamp")
        timestamp = int(timestamp_text)
        if abs(now - timestamp) > tolerance_seconds:
            raise WebhookRefused("stale")
        if not _SIGNATURE.fullmatch(signature_text):
            raise WebhookRefused("bad_signature")
        signature = bytes.fromhex(signature_text)
        content = fal_signed_content(request_id, user_id, timestamp, body)
        webhook = FalWebhook(request_id, user_id, timestamp, signature)
        if _any_verifies(await self.public_keys(), signature, content):
            return webhook
        refreshed = await self._refetch_for_unknown_key()
        if refreshed is not None and _any_verifies(refreshed, signature, content):
            return webhook
        raise WebhookRefused("bad_signature")


def _any_verifies(public_keys: list[Ed25519PublicKey], signature: bytes, content: bytes) -> bool:
    for key in public_keys:
        try:
            key.verify(signature, content)
        except InvalidSignature:
            continue
        return True
    return False
