"""The gateway's Ed25519 webhook signing keys (fal's scheme): parsing, generation, the signer and the public JWKS.

``GATEWAY_WEBHOOK_SIGNING_KEYS`` is a comma-separated list of ``<kid>:<base64url 32-byte seed>``. The first key signs
and every key is published in the JWKS, so receivers verify with any of them. Two ways to run:

- **Unset (generated key):** zero configuration. The first replica to start generates one key and stores it with
  ``SET NX`` in ``gw:v1:webhook:signing-key``; every replica then reads that key, so all of them sign alike. The
  trade-off: the seed lives in Redis in plaintext (anyone who can read Redis can sign as the gateway), and it never
  rotates by itself; it is replaced only when an operator configures keys (or deletes the Redis key and restarts
  every replica, which breaks receivers until their JWKS caches refresh).
- **Configured keys:** the seeds live wherever the operator keeps secrets, never in Redis. Rotation: add the new key
  *second* (published, not signing); wait until receivers' JWKS caches have refreshed (fal's guidance is at most
  24 h); move it *first* (it signs from now on, the old key stays published); drop the old key once the deliveries
  it signed are done (delivered or dead-lettered).

A seed is never logged, never echoed in an error and never part of a repr; only key ids are.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, cast

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import SecretStr
from redis.asyncio import Redis

from service import keys

log = structlog.get_logger(__name__)

SEED_BYTES = 32
KID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_SETTING = "GATEWAY_WEBHOOK_SIGNING_KEYS"
_LOAD_ATTEMPTS = 3


def b64url(raw: bytes) -> str:
    """base64url without padding, as JWKs spell binary values."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """The inverse of :func:`b64url`, padding optional. ValueError (with no part of ``text``) if it is not base64url."""
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One Ed25519 key pair and its id. The private half is kept out of the repr."""

    kid: str
    private_key: Ed25519PrivateKey = field(repr=False, compare=False)

    @classmethod
    def from_seed(cls, kid: str, seed: bytes) -> SigningKey:
        return cls(kid, Ed25519PrivateKey.from_private_bytes(seed))

    def public_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, content: bytes) -> str:
        """Hex of the 64-byte Ed25519 signature of ``content``."""
        return self.private_key.sign(content).hex()

    def jwk(self) -> dict[str, str]:
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url(self.public_bytes()),
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        }


def _parse_entry(entry: str, position: int) -> SigningKey:
    where = f"{_SETTING} entry {position}"
    kid, colon, seed_text = entry.partition(":")
    kid = kid.strip()
    if not colon:
        raise ValueError(f"{where} is not <kid>:<base64url seed>")
    if not KID_PATTERN.fullmatch(kid):
        raise ValueError(f"{where}: the key id must be 1-64 of A-Z a-z 0-9 . _ -")
    where = f"{where} (kid {kid!r})"
    try:
        seed = b64url_decode(seed_text.strip())
    except ValueError:
        raise ValueError(f"{where}: the seed is not base64url") from None
    if len(seed) != SEED_BYTES:
        raise ValueError(f"{where}: the seed must decode to {SEED_BYTES} bytes, not {len(seed)}")
    return SigningKey.from_seed(kid, seed)


def parse_signing_keys(text: str) -> list[SigningKey]:
    """``<kid>:<base64url seed>,...`` -> keys, the signer first. ValueError names the bad entry by position (and its
    key id once that parsed), never its seed. Blank entries (a trailing comma) are skipped."""
    parsed: list[SigningKey] = []
    for position, entry in enumerate(text.split(","), start=1):
        if entry.strip():
            parsed.append(_parse_entry(entry, position))
    if not parsed:
        raise ValueError(f"{_SETTING} names no key")
    kids = [key.kid for key in parsed]
    duplicates = sorted({kid for kid in kids if kids.count(kid) > 1})
    if duplicates:
        raise ValueError(f"{_SETTING} repeats the key id {duplicates[0]!r}")
    return parsed


def generate_signing_key() -> str:
    """A fresh ``<kid>:<base64url seed>`` entry (random url-safe kid), as the setting spells it."""
    return f"{secrets.token_urlsafe(9)}:{b64url(secrets.token_bytes(SEED_BYTES))}"


class SigningKeys:
    """The keys this replica signs with: the configured ones, or the one key every replica shares through Redis."""

    def __init__(self, redis: Redis, configured: SecretStr | None) -> None:
        self._redis = redis
        self._configured = configured
        self._keys: list[SigningKey] | None = None
        self._lock = asyncio.Lock()

    async def ready(self) -> None:
        """Load the keys, once (later calls return at once). Raises ValueError for a bad configured key."""
        if self._keys is not None:
            return
        async with self._lock:
            if self._keys is None:
                if self._configured is not None:
                    self._keys = parse_signing_keys(self._configured.get_secret_value())
                else:
                    self._keys = await self._shared_key()

    async def _shared_key(self) -> list[SigningKey]:
        """SET NX a candidate, then read back whichever key won: every replica converges on the first one stored."""
        key = keys.webhook_signing_key()
        for _ in range(_LOAD_ATTEMPTS):
            candidate = generate_signing_key()
            if await self._redis.set(key, candidate, nx=True):
                parsed = parse_signing_keys(candidate)
                log.info("webhook_signing_key_generated", kid=parsed[0].kid)
                return parsed
            stored = cast("str | None", await self._redis.get(key))
            if stored is not None:  # None: deleted between the two calls; try again
                try:
                    return parse_signing_keys(stored)
                except ValueError as exc:
                    raise ValueError(f"the shared signing key in Redis ({key}) is malformed: {exc}") from None
        raise RuntimeError("the shared webhook signing key keeps disappearing from Redis")

    @property
    def published(self) -> list[SigningKey]:
        """Every key, the signer first."""
        if self._keys is None:
            raise RuntimeError("SigningKeys.ready() was not awaited")
        return list(self._keys)

    @property
    def signer(self) -> SigningKey:
        """The key that signs: the first configured one."""
        return self.published[0]

    def sign(self, content: bytes) -> str:
        """Hex of the signer's 64-byte Ed25519 signature of ``content``."""
        return self.signer.sign(content)

    def jwks(self) -> dict[str, Any]:
        """The public JWKS, every key (signer first)."""
        return {"keys": [key.jwk() for key in self.published]}
