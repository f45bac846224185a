"""Per-tenant Standard Webhooks secrets in Redis: rotation with a grace period, and the secrets that sign right now.

Each tenant's secrets are one HASH in the tenant's slot (``gw:v1:tenant:{<tid>}:whsec``): ``current``, and after a
rotation ``previous`` with ``previous_until`` (epoch seconds), until when it signs beside the new one so receivers
can switch without losing a delivery. Both changes are single Lua scripts (``lua/secret_rotate.lua``,
``lua/secret_current.lua``), so concurrent rotations and first uses on any number of replicas stay consistent.

The secrets are stored in Redis in plaintext: HMAC signing needs the secret itself, so the gateway, like every
webhook provider, must be able to read it (protect Redis accordingly). A secret is returned to a caller only once,
by :meth:`TenantSecrets.rotate`, and is never logged.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import cast

from redis.asyncio import Redis

from service import keys
from service.domain.webhooks import new_secret
from service.redis_client import load_script

SECRET_BYTES = 32


def _fresh_secret() -> str:
    return new_secret(secrets.token_bytes(SECRET_BYTES))


class TenantSecrets:
    def __init__(self, redis: Redis, *, grace_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._grace = grace_seconds
        self._clock = clock
        self._rotate = load_script(redis, "service.webhooks", "secret_rotate.lua")
        self._current = load_script(redis, "service.webhooks", "secret_current.lua")

    def now(self) -> float:
        """The clock grace periods are measured on (``rotate``'s old secret signs until ``now() + grace``)."""
        return self._clock()

    async def rotate(self, tenant_id: str) -> str:
        """A new ``whsec_...`` secret for the tenant, signing from now on; the old current one keeps signing beside
        it for the grace period. The only time a secret is handed out: show it to the tenant once."""
        secret = _fresh_secret()
        await self._rotate(keys=[keys.webhook_secrets(tenant_id)], args=[secret, repr(self._clock() + self._grace)])
        return secret

    async def signing_secrets(self, tenant_id: str) -> list[str]:
        """The secrets to sign a delivery with, current first: the current one (created, exactly once across
        replicas, if the tenant never rotated) and the previous one while its grace lasts."""
        answer = await self._current(
            keys=[keys.webhook_secrets(tenant_id)], args=[_fresh_secret(), repr(self._clock())]
        )
        return list(cast("list[str]", answer))

    async def drop(self, tenant_id: str) -> None:
        """Forget the tenant's secrets (tenant deletion)."""
        await self._redis.delete(keys.webhook_secrets(tenant_id))
