"""Which upstream the gateway talks to (fal, a caller's transport, or the built-in simulator) and its HTTP client."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from litestar.handlers import asgi
from litestar.types import ControllerRouterHandler, Receive, Scope, Send

from service.config import Settings
from service.netguard import guarded_transport, origin_of
from service.outbound import fetch_policy
from service.upstream.transport import PooledTransport

SIMULATOR_MOUNT = "/_simulator"
USER_AGENT = "seedance-gateway/0.1"


@dataclass(frozen=True, slots=True)
class Upstream:
    base_url: str
    transport: httpx.AsyncBaseTransport | None
    mount: ControllerRouterHandler | None  # the embedded simulator's routes, served by the gateway itself
    media_transport: httpx.AsyncBaseTransport | None  # for result media and input images
    media_origin: str  # the one origin whose media may be on a private address: the operator's own upstream
    rest_url: str = ""  # fal's storage API (uploads), reached through ``transport`` too; "": GATEWAY_UPSTREAM_REST_URL


def select_upstream(settings: Settings, transport: httpx.AsyncBaseTransport | None) -> Upstream:
    """fal itself, a caller-supplied transport, or (``GATEWAY_SIMULATOR``) the built-in simulator in-process."""
    if transport is not None or not settings.simulator:
        base = settings.upstream_url.rstrip("/")
        return Upstream(base, transport, None, transport, trusted_origin(base), settings.upstream_rest_url.rstrip("/"))
    from service.simulator.embedded import embedded_simulator  # noqa: PLC0415 - only the simulator mode needs it

    # Media of other URLs (the input images of a request) go out pinned to the addresses the guard checked.
    network = guarded_transport(fetch_policy(settings.image_hash_allow_private and settings.media_probe_allow_private))
    sim = embedded_simulator(public_base(settings) + SIMULATOR_MOUNT, network=network)

    async def simulator_mount(scope: Scope, receive: Receive, send: Send) -> None:
        await sim.app(scope, receive, send)

    mount = asgi(SIMULATOR_MOUNT, is_mount=True, copy_scope=True, include_in_schema=False)(simulator_mount)
    media_origin = trusted_origin(sim.public_base)
    return Upstream(sim.upstream_url, sim.transport, mount, sim.media_transport, media_origin, sim.upstream_url)


def upstream_http_client(settings: Settings, upstream: Upstream) -> httpx.AsyncClient:
    """The client for fal's queue API: the fal key on every request, explicit timeouts, and (unless a caller gave
    its own transport) aiohttp's connection pool of ``upstream_max_connections`` (``service/upstream/transport.py``)."""
    key = settings.fal_key.get_secret_value() if settings.fal_key else "simulator"
    transport = upstream.transport or PooledTransport(
        max_connections=settings.upstream_max_connections, keepalive_seconds=settings.upstream_keepalive_seconds
    )
    return CookielessClient(
        base_url=upstream.base_url,
        transport=transport,
        headers={"Authorization": f"Key {key}", "User-Agent": USER_AGENT},
        timeout=httpx.Timeout(
            settings.upstream_read_timeout_seconds, connect=settings.upstream_connect_timeout_seconds
        ),
        follow_redirects=False,
    )


def trusted_origin(base_url: str) -> str:
    origin = origin_of(base_url)
    if origin is None:
        raise ValueError(f"not an absolute URL: {base_url!r}")
    return origin


def public_base(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = "127.0.0.1" if settings.host in {"0.0.0.0", "::", ""} else settings.host  # noqa: S104 - a comparison
    return f"{'https' if settings.tls_enabled else 'http'}://{host}:{settings.port}"


class _IgnoredCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        del response


NO_COOKIES = _IgnoredCookies()


class CookielessClient(httpx.AsyncClient):
    """An httpx client that keeps no cookies. fal's queue API sets none the gateway wants, and httpx parses every
    answer for them through urllib's cookie jar: about 9 % of a submit's CPU (py-spy, one connection)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return NO_COOKIES

    @cookies.setter
    def cookies(self, value: object) -> None:
        del value
