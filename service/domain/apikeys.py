"""Tenant API keys: format, generation, parsing and hashing (pure).

A key has fal's own ``<key_id>:<secret>`` form, so a tenant sets ``FAL_KEY`` to it unchanged. ``key_id`` carries the
recognisable ``sgw_`` prefix (so leaked keys are easy to grep for and wrong-prefix keys are refused before any
lookup); the secret is 256 random bits. Only ``sha256(secret)`` is stored: the secret is high-entropy, so a slow
password hash would add latency without adding security.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_ID_PREFIX = "sgw_"
_KEY_ID_RE = re.compile(r"^sgw_[a-z0-9]{20}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
TENANT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    secret: str

    @property
    def token(self) -> str:
        """The full key, shown to the operator exactly once."""
        return f"{self.key_id}:{self.secret}"

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)


@dataclass(frozen=True, slots=True)
class PresentedKey:
    key_id: str
    secret: str


def generate_key() -> IssuedKey:
    key_id = KEY_ID_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(20))
    return IssuedKey(key_id=key_id, secret=secrets.token_urlsafe(32))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret against the stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def parse_authorization(header: str | None) -> PresentedKey | None:
    """Parse ``Key <key_id>:<secret>`` (fal's scheme) or ``Bearer <key_id>:<secret>``; None when malformed."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() not in {"key", "bearer"}:
        return None
    key_id, sep, secret = token.strip().partition(":")
    if not sep or not _KEY_ID_RE.fullmatch(key_id) or not _SECRET_RE.fullmatch(secret):
        return None
    return PresentedKey(key_id=key_id, secret=secret)


def is_valid_tenant_id(tenant_id: str) -> bool:
    """Tenant ids become part of Redis key names, so only a conservative alphabet is allowed."""
    return bool(TENANT_ID_RE.fullmatch(tenant_id))
