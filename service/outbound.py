"""The outbound-URL policies built from settings, in one place: webhooks, result media and input images."""

from __future__ import annotations

import functools

import httpx

from service.config import Settings
from service.domain.urls import PUBLIC_ONLY, UNRESTRICTED, OutboundPolicy, parse_networks
from service.netguard import GuardedClient, guarded_transport


def webhook_policy(settings: Settings) -> OutboundPolicy:
    """Where tenant webhooks may go: public addresses, private ones with ``GATEWAY_WEBHOOK_ALLOW_PRIVATE``, and
    anything inside ``GATEWAY_WEBHOOK_ALLOWED_NETWORKS`` (ValueError naming a malformed entry)."""
    return _webhook_policy(settings.webhook_allow_private, settings.webhook_allowed_networks)


@functools.cache
def _webhook_policy(allow_private: bool, networks: str) -> OutboundPolicy:
    return OutboundPolicy(allow_private=allow_private, allowed_networks=parse_networks(networks))


def fetch_policy(allow_private: bool) -> OutboundPolicy:
    """Where result media and input images may be fetched from: public addresses only, or, with the operator's
    ``GATEWAY_MEDIA_PROBE_ALLOW_PRIVATE`` or ``GATEWAY_IMAGE_HASH_ALLOW_PRIVATE``, anywhere."""
    return UNRESTRICTED if allow_private else PUBLIC_ONLY


def fetch_client(
    *,
    allow_private: bool,
    trusted_origin: str,
    inner: httpx.AsyncBaseTransport | None,
    also_trusted: tuple[str, ...] = (),
) -> GuardedClient:
    """A client for result media or input images under :func:`fetch_policy`, the operator's own upstream trusted by
    exact origin (and ``also_trusted``: its storage API, whose file URLs serve as input images); pinned to the
    checked addresses unless ``inner`` routes the fetches in-process."""
    origins = (trusted_origin, *also_trusted)
    transport = guarded_transport(fetch_policy(allow_private), trusted_origins=origins, inner=inner)
    return GuardedClient(transport)
