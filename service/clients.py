"""The outbound clients one gateway process opens, each behind the right guard, and closing them together."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from redis.asyncio import Redis

from service.config import Settings
from service.netguard import GuardedClient, Resolver, guarded_transport, system_resolver
from service.outbound import fetch_client, webhook_policy
from service.upstream.selection import Upstream, upstream_http_client

JWKS_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Clients:
    redis: Redis
    fal: httpx.AsyncClient  # fal's queue API, with the gateway's fal key
    probe: GuardedClient  # result media (the settlement's size probe), no credentials
    images: GuardedClient  # input images (content hashing for cache keys), no credentials
    webhooks: GuardedClient  # tenant webhooks: pinned to the addresses the guard checked
    fal_jwks: httpx.AsyncClient  # fal's public signing keys, from the operator's configured URL

    async def aclose(self) -> None:
        for client in (self.fal, self.probe, self.images, self.webhooks, self.fal_jwks):
            await client.aclose()


def open_clients(
    settings: Settings,
    upstream: Upstream,
    redis: Redis,
    *,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver = system_resolver,
) -> Clients:
    """Every client but Redis is opened here. ``webhook_transport`` (tests) routes webhooks in-process, still checked
    by the guard; ``resolver`` is how webhook hosts are resolved (the system's; tests inject names)."""
    origin = upstream.media_origin
    return Clients(
        redis=redis,
        fal=upstream_http_client(settings, upstream),
        probe=fetch_client(
            allow_private=settings.media_probe_allow_private, trusted_origin=origin, inner=upstream.media_transport
        ),
        images=fetch_client(
            allow_private=settings.image_hash_allow_private, trusted_origin=origin, inner=upstream.media_transport
        ),
        webhooks=GuardedClient(
            guarded_transport(webhook_policy(settings), resolver=resolver, inner=webhook_transport),
            timeout=settings.webhook_timeout_seconds,
        ),
        fal_jwks=httpx.AsyncClient(
            transport=upstream.media_transport, timeout=JWKS_TIMEOUT_SECONDS, follow_redirects=False
        ),
    )
