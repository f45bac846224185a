"""The outbound clients one gateway process opens, each behind the right guard, and closing them together."""

from __future__ import annotations

from dataclasses import dataclass, replace

import httpx
from redis.asyncio import Redis

from service.config import Settings
from service.domain.urls import PUBLIC_ONLY
from service.netguard import GuardedClient, Resolver, guarded_transport, system_resolver
from service.outbound import fetch_client, webhook_policy
from service.simulator.shared import SharedJobsTransport
from service.upstream.sandbox import Sandbox
from service.upstream.selection import Upstream, trusted_origin, upstream_http_client

JWKS_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class SandboxClients:
    """The sandbox simulator's counterparts of ``fal``, ``probe`` and ``images`` (``service/upstream/sandbox.py``)."""

    fal: httpx.AsyncClient
    probe: GuardedClient
    images: GuardedClient

    async def aclose(self) -> None:
        for client in (self.fal, self.probe, self.images):
            await client.aclose()


@dataclass(frozen=True, slots=True)
class Clients:
    redis: Redis
    fal: httpx.AsyncClient  # fal's queue API, with the gateway's fal key
    probe: GuardedClient  # result media (the settlement's size probe), no credentials
    images: GuardedClient  # input images (content hashing for cache keys), no credentials
    webhooks: GuardedClient  # tenant webhooks: pinned to the addresses the guard checked
    fal_jwks: httpx.AsyncClient  # fal's public signing keys, from the operator's configured URL
    storage: GuardedClient  # fal's storage API (service/storage/), and the upload URLs it hands out: no credentials
    rest_url: str  # fal's storage API: GATEWAY_UPSTREAM_REST_URL, or the embedded simulator
    sandbox: SandboxClients | None = None  # sandbox tenants' upstream; without it their jobs fail (503)

    async def aclose(self) -> None:
        for client in (self.fal, self.probe, self.images, self.webhooks, self.fal_jwks, self.storage):
            await client.aclose()
        if self.sandbox is not None:
            await self.sandbox.aclose()


def open_clients(  # noqa: PLR0913 - every outbound destination's inputs
    settings: Settings,
    upstream: Upstream,
    redis: Redis,
    *,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver = system_resolver,
    sandbox: Sandbox | None = None,
) -> Clients:
    """Every client but Redis is opened here. ``webhook_transport`` (tests) routes webhooks in-process, still checked
    by the guard; ``resolver`` is how webhook hosts are resolved (the system's; tests inject names)."""
    origin = upstream.media_origin
    rest_url = upstream.rest_url or settings.upstream_rest_url.rstrip("/")
    return Clients(
        redis=redis,
        fal=upstream_http_client(settings, upstream),
        probe=fetch_client(
            allow_private=settings.media_probe_allow_private, trusted_origin=origin, inner=upstream.media_transport
        ),
        images=fetch_client(
            allow_private=settings.image_hash_allow_private,
            trusted_origin=origin,
            inner=upstream.media_transport,
            also_trusted=(trusted_origin(rest_url),),  # uploaded files (file_url) come back as image_url
        ),
        webhooks=GuardedClient(
            guarded_transport(webhook_policy(settings), resolver=resolver, inner=webhook_transport),
            timeout=settings.webhook_timeout_seconds,
        ),
        fal_jwks=httpx.AsyncClient(
            transport=upstream.media_transport, timeout=JWKS_TIMEOUT_SECONDS, follow_redirects=False
        ),
        storage=_storage_client(upstream, rest_url),
        rest_url=rest_url,
        sandbox=None if sandbox is None else _sandbox_clients(settings, sandbox, redis),
    )


def _storage_client(upstream: Upstream, rest_url: str) -> GuardedClient:
    """fal's storage API is the operator's choice (trusted by exact origin); the upload URLs fal answers with are
    not, so they go through the guard's public-only policy."""
    trusted = (trusted_origin(rest_url),)
    transport = guarded_transport(PUBLIC_ONLY, trusted_origins=trusted, inner=upstream.transport)
    return GuardedClient(transport, timeout=30.0)


def _sandbox_clients(settings: Settings, sandbox: Sandbox, redis: Redis) -> SandboxClients:
    """The sandbox simulator's clients: in-process, its jobs shared through Redis, never with the gateway's fal key."""
    upstream = sandbox.upstream
    origin, media = upstream.media_origin, upstream.media_transport
    assert upstream.transport is not None  # the embedded simulator is always in-process
    sandbox.files.redis = redis  # its tenants' uploads (``service/simulator/files.py``), shared like its jobs
    shared = SharedJobsTransport(
        upstream.transport, sandbox.simulator, redis, retention_seconds=settings.job_retention_seconds
    )
    return SandboxClients(
        fal=upstream_http_client(settings.model_copy(update={"fal_key": None}), replace(upstream, transport=shared)),
        probe=fetch_client(allow_private=settings.media_probe_allow_private, trusted_origin=origin, inner=media),
        images=fetch_client(allow_private=settings.image_hash_allow_private, trusted_origin=origin, inner=media),
    )
