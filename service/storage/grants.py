"""What the gateway hands out for the clients' second upload step, kept in Redis: one-use upload URLs (fal's own
upload URL stays inside) and CDN upload tokens (only their hash is stored), and the per-tenant upload rate limit."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, cast

from redis.asyncio import Redis

from service import keys
from service.errors import Forbidden, NotFound, TooManyRequests, Unauthorized
from service.redis_client import load_script

RATE_WINDOW_SECONDS = 60
GONE = "This upload URL is unknown, already used or expired; initiate the upload again"


@dataclass(frozen=True, slots=True)
class UploadGrant:
    """One upload URL the gateway handed out: whose it is, how large it may be, and where fal wants the bytes (a
    sandbox grant's bytes go to the sandbox's files, at ``file_url``; ``upstream_url`` is then empty)."""

    tenant_id: str
    upstream_url: str
    content_type: str
    file_name: str
    file_url: str
    max_bytes: int
    sandbox: bool = False
    key_id: str = ""  # the key that initiated it: a keyless PUT is served only while that key is active


@dataclass(frozen=True, slots=True)
class Taken:
    """A grant taken for its one use, with what :meth:`UploadGrants.restore` needs to hand it back."""

    grant_id: str
    grant: UploadGrant
    expires_ms: int


@dataclass(frozen=True, slots=True)
class TokenHolder:
    """Whose a CDN upload token is: the tenant, the key it was minted for, and its world (sandbox or real)."""

    tenant_id: str
    key_id: str
    sandbox: bool


class UploadGrants:
    def __init__(self, redis: Redis, *, ttl_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._ttl_ms = int(ttl_seconds * 1000)
        self._clock = clock
        self._take = load_script(redis, "service.storage", "take_upload.lua")
        self._count = load_script(redis, "service.tenants", "count_failure.lua")  # INCR in a window: the same step

    @property
    def ttl_seconds(self) -> float:
        return self._ttl_ms / 1000

    def expires_at(self) -> float:
        return self._clock() + self.ttl_seconds

    async def count_upload(self, tenant_id: str, limit: int) -> None:
        """Take one of the tenant's uploads of this minute, or 429 once ``limit`` are taken (0: no limit)."""
        if limit <= 0:
            return
        window = int(self._clock()) // RATE_WINDOW_SECONDS
        count = int(
            await self._count(keys=[keys.upload_rate(tenant_id, window)], args=[RATE_WINDOW_SECONDS * 1000 * 2])
        )
        if count > limit:
            raise TooManyRequests(
                f"This tenant's limit of {limit} uploads per minute is reached",
                retry_after=(window + 1) * RATE_WINDOW_SECONDS - self._clock(),
                rule="upload_requests_per_minute",
            )

    async def grant_upload(self, grant: UploadGrant) -> str:
        """Store ``grant`` under a fresh unguessable id (its URL's last segment) for one use within the TTL."""
        grant_id = secrets.token_urlsafe(32)
        await self._store(grant_id, grant, self._now_ms() + self._ttl_ms)
        return grant_id

    async def restore(self, taken: Taken) -> None:
        """Hand a taken grant back, unchanged and with its original expiry, after a use that failed for a reason
        the client can retry past (fal unreachable or failing, the body cut off, the tenant disabled for now)."""
        if taken.expires_ms > self._now_ms():
            await self._store(taken.grant_id, taken.grant, taken.expires_ms)

    async def _store(self, grant_id: str, grant: UploadGrant, expires_ms: int) -> None:
        key = keys.upload_grant(grant_id)
        fields = {
            "tenant": grant.tenant_id,
            "sandbox": _world(grant.sandbox),
            "expires_ms": str(expires_ms),
            "grant": json.dumps(asdict(grant)),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast("dict[Any, Any]", fields))
            pipe.pexpireat(key, expires_ms)
            await pipe.execute()

    async def take_upload(self, grant_id: str, tenant_id: str | None, sandbox: bool | None = None) -> Taken:
        """The grant behind ``grant_id``, taken for its one use (``lua/take_upload.lua``); 404 when unknown, used or
        expired, 403 when the caller authenticated as another tenant, or as a tenant of the other world (sandbox or
        real) than the grant's (the grant then stays)."""
        if not grant_id or len(grant_id) > 128:
            raise NotFound(GONE)
        world = "" if sandbox is None else _world(sandbox)
        result = cast(
            "list[str]",
            await self._take(keys=[keys.upload_grant(grant_id)], args=[self._now_ms(), tenant_id or "", world]),
        )
        if int(result[0]) == 1:
            return Taken(grant_id, UploadGrant(**json.loads(result[1])), int(result[2]))
        if result[1] == "forbidden":
            raise Forbidden("This upload URL belongs to another tenant, or to the other world (sandbox or real)")
        raise NotFound(GONE)

    async def mint_token(self, holder: TokenHolder) -> tuple[str, float]:
        """A fresh CDN upload token for ``holder`` and its expiry (epoch seconds); Redis keeps only its hash. A
        sandbox tenant's token is marked so: its uploads go to the sandbox's files for as long as it lives."""
        token = secrets.token_urlsafe(32)
        expires_ms = self._now_ms() + self._ttl_ms
        key = keys.upload_token(token_digest(token))
        fields = {
            "tenant": holder.tenant_id,
            "key": holder.key_id,
            "sandbox": _world(holder.sandbox),
            "expires_ms": str(expires_ms),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast("dict[Any, Any]", fields))
            pipe.pexpire(key, self._ttl_ms)
            await pipe.execute()
        return token, expires_ms / 1000

    async def token_holder(self, authorization: str | None) -> TokenHolder:
        """Whose the ``Bearer <token>`` minted by :meth:`mint_token` is, or 401. A token may be used for any number
        of uploads until it expires, like fal's (its key and tenant are checked on every use: see the CDN route)."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 256:
            raise Unauthorized("Missing or malformed upload token: send 'Authorization: Bearer <token>'")
        fields = cast(
            "list[str | None]",
            await self._redis.hmget(keys.upload_token(token_digest(token)), ["tenant", "expires_ms", "sandbox", "key"]),
        )
        tenant, expires_ms, world, key_id = fields
        if tenant is None or expires_ms is None or int(expires_ms) <= self._now_ms():
            raise Unauthorized("Invalid or expired upload token")
        return TokenHolder(tenant, key_id or "", world == _world(True))

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _world(sandbox: bool) -> str:
    return "1" if sandbox else "0"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
