"""Authentication of tenant keys (``Authorization: Key|Bearer <key_id>:<secret>``) and of the admin token.

Key and tenant records are cached in-process, and the cache is trusted only while this process is subscribed to
the auth invalidation channel: every revocation, rotation, disable or delete publishes there, so a change reaches
every replica within milliseconds. When the subscription is down the cache is bypassed, never trusted stale.
Failed authentications are counted per source address; past the limit the source gets 429 until the minute ends.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler
from redis.asyncio import Redis

from service import keys
from service.config import Settings
from service.domain.apikeys import PresentedKey, parse_authorization, secret_matches
from service.domain.tenants import ApiKeyRecord, KeyState, Tenant
from service.errors import Forbidden, TooManyRequests, Unauthorized
from service.events import EventBus
from service.http import client_address
from service.metrics import Metrics
from service.redis_client import load_script
from service.tenants.store import TenantStore

log = structlog.get_logger(__name__)
T = TypeVar("T")
FAILURE_WINDOW_SECONDS = 60
IPV6_FAILURE_PREFIX = 64


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a tenant API request."""

    tenant: Tenant
    key_id: str

    @property
    def tenant_id(self) -> str:
        return self.tenant.id


class _Cache(Generic[T]):
    """A TTL cache whose entries can be invalidated; a load that began before an invalidation is never stored, so a
    record read just before a revocation cannot outlive it."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[str, tuple[T, float]] = {}
        self._versions: dict[str, int] = {}
        self._epoch = 0

    def get(self, name: str) -> T | None:
        hit = self._entries.get(name)
        if hit is None or time.monotonic() - hit[1] > self._ttl:
            return None
        return hit[0]

    def version(self, name: str) -> tuple[int, int]:
        return self._epoch, self._versions.get(name, 0)

    def put(self, name: str, value: T, version: tuple[int, int]) -> None:
        if version == self.version(name):
            self._entries[name] = (value, time.monotonic())

    def drop(self, name: str) -> None:
        self._entries.pop(name, None)
        self._versions[name] = self._versions.get(name, 0) + 1

    def clear(self) -> None:
        self._entries.clear()
        self._versions.clear()
        self._epoch += 1


class Authenticator:
    def __init__(  # noqa: PLR0913 - collaborators, all explicit
        self,
        redis: Redis,
        tenants: TenantStore,
        bus: EventBus,
        *,
        metrics: Metrics,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._tenants = tenants
        self._bus = bus
        self._metrics = metrics
        self._settings = settings
        self._clock = clock
        self._keys: _Cache[ApiKeyRecord] = _Cache(settings.auth_cache_seconds)
        self._tenant_cache: _Cache[Tenant] = _Cache(settings.auth_cache_seconds)
        self._touched: dict[str, float] = {}
        self._count_failure = load_script(redis, "service.tenants", "count_failure.lua")
        bus.on(keys.auth_events_channel(), self._invalidate)
        bus.on_reset(self._clear)

    async def authenticate(self, header: str | None, source: str) -> Principal:
        presented = parse_authorization(header)
        if presented is None:
            await self.record_failure(source, "malformed")
            raise Unauthorized("Missing or malformed credentials: send 'Authorization: Key <key_id>:<secret>'")
        record = await self._key(presented.key_id)
        now = self._clock()
        if record is None or not secret_matches(presented.secret, record.secret_hash):
            await self.record_failure(source, "unknown_key")
            raise Unauthorized("Invalid API key")
        if record.state(now) is not KeyState.ACTIVE:
            await self.record_failure(source, f"key_{record.state(now).value}")
            raise Unauthorized(f"API key is {record.state(now).value}")
        tenant = await self._tenant(record.tenant_id)
        if tenant is None:
            await self.record_failure(source, "tenant_deleted")
            raise Unauthorized("Invalid API key")
        self._refuse_disabled(tenant)
        await self._touch(presented, now)
        return Principal(tenant=tenant, key_id=record.key_id)

    async def holder(self, tenant_id: str, key_id: str) -> Principal:
        """The principal behind what the gateway handed out to ``key_id`` of ``tenant_id`` (an upload URL or
        token), as it stands now: 401 once that key is revoked, expired or deleted, or the tenant deleted; 403 while
        the tenant is disabled. So a capability never outlives the key it was issued to. One from before keys were
        recorded (``key_id`` "") is checked for its tenant only."""
        if key_id:
            record = await self._key(key_id)
            if record is None or record.tenant_id != tenant_id:
                raise Unauthorized("The API key this was issued to no longer exists")
            if (state := record.state(self._clock())) is not KeyState.ACTIVE:
                self._metrics.requests_rejected.labels(reason=f"auth_key_{state.value}").inc()
                raise Unauthorized(f"The API key this was issued to is {state.value}")
        tenant = await self._tenant(tenant_id)
        if tenant is None:
            raise Unauthorized("The tenant this was issued to no longer exists")
        self._refuse_disabled(tenant)
        return Principal(tenant=tenant, key_id=key_id)

    def _refuse_disabled(self, tenant: Tenant) -> None:
        if tenant.disabled:
            self._metrics.requests_rejected.labels(reason="tenant_disabled").inc()
            raise Forbidden("This tenant is disabled", error_type="tenant_disabled")

    async def _key(self, key_id: str) -> ApiKeyRecord | None:
        return await self._cached(self._keys, key_id, self._tenants.get_key)

    async def _tenant(self, tenant_id: str) -> Tenant | None:
        return await self._cached(self._tenant_cache, tenant_id, self._tenants.get_tenant)

    async def _cached(self, cache: _Cache[T], name: str, load: Callable[[str], Any]) -> T | None:
        trusted = self._bus.connected
        if trusted and (hit := cache.get(name)) is not None:
            return hit
        version = cache.version(name)
        value: T | None = await load(name)
        if trusted and value is not None:
            cache.put(name, value, version)
        return value

    @property
    def trusted_proxy_hops(self) -> int:
        return self._settings.trusted_proxy_hops

    async def record_failure(self, source: str, reason: str) -> None:
        """Count a failed authentication from ``source``; raises 429 once the source is past its limit."""
        self._metrics.requests_rejected.labels(reason=f"auth_{reason}").inc()
        limit = self._settings.auth_failures_per_minute
        if limit <= 0:
            return
        window = int(self._clock()) // FAILURE_WINDOW_SECONDS
        counted = keys.auth_failures(failure_source(source), window)
        count = int(await self._count_failure(keys=[counted], args=[FAILURE_WINDOW_SECONDS * 1000]))
        if count > limit:
            log.warning("auth_failures_limited", source=source, failures=count)
            retry = (window + 1) * FAILURE_WINDOW_SECONDS - self._clock()
            raise TooManyRequests(
                "Too many failed authentications from this address; try again later",
                retry_after=retry,
                rule="auth_failures_per_minute",
                error_type="auth_rate_limited",
            )

    async def _touch(self, presented: PresentedKey, now: float) -> None:
        """Record "last used", at most once per interval per key and process, to keep the hot path cheap."""
        last = self._touched.get(presented.key_id)
        if last is None or now - last >= self._settings.key_touch_interval_seconds:
            self._touched[presented.key_id] = now
            await self._tenants.touch_key(presented.key_id, now)

    def _invalidate(self, message: str) -> None:
        kind, _, name = message.partition(":")
        if kind == "key":
            self._keys.drop(name)
        elif kind == "tenant":
            self._tenant_cache.drop(name)
        else:
            self._clear()

    def _clear(self) -> None:
        self._keys.clear()
        self._tenant_cache.clear()


def failure_source(address: str) -> str:
    """Whose failures an address counts as: an IPv4 address itself, an IPv6 address its /64 (one subscriber's
    usual allocation: counting single IPv6 addresses would give each client 2**64 budgets of guesses)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_FAILURE_PREFIX), strict=False))
    return address


async def requires_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for /admin: ``Authorization: Bearer <GATEWAY_ADMIN_TOKEN>``, compared in constant time. Failures count
    against the same per-source limit as tenant keys, so the admin token cannot be brute-forced either."""
    expected: str | None = connection.app.state.admin_token
    if not expected:
        raise Unauthorized("The admin API is disabled: set GATEWAY_ADMIN_TOKEN to enable it")
    scheme, _sep, token = (connection.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        auth: Authenticator = connection.app.state.deps.authenticator
        await auth.record_failure(client_address(connection.scope, auth.trusted_proxy_hops), "admin_token")
        raise Unauthorized("Invalid admin token")


async def authenticate_request(request: Request[Any, Any, Any], authenticator: Authenticator) -> Principal:
    """The tenant key in ``Authorization``, authenticated, or 401/403/429; the tenant is noted for the request log."""
    source = client_address(request.scope, authenticator.trusted_proxy_hops)
    principal = await authenticator.authenticate(request.headers.get("authorization"), source)
    request.state.tenant_id = principal.tenant_id
    if principal.tenant.sandbox:
        request.state.sandbox = True  # service/http.py marks every response to it
    return principal


async def provide_principal(request: Request[Any, Any, Any], state: State) -> Principal:
    """The provider of ``principal``. It reads the authenticator from the app state itself rather than depending on
    another provider, so that a handler whose only dependency is ``principal`` resolves it without a task group."""
    authenticator: Authenticator = state.deps.authenticator
    return await authenticate_request(request, authenticator)
