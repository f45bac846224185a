"""fal's server-proxy protocol (``@fal-ai/server-proxy``, the JS client's ``proxyUrl``) served in-process.

A request to ``GATEWAY_PROXY_PATH`` names its real target in ``x-fal-target-url``. A target that maps onto one of
the gateway's own routes (docs/protocol.md, "Server proxy") is dispatched at the ASGI level: the scope's path,
raw path and query string are rewritten and the app is called again, before routing, with the same method,
headers and body stream. The mapped route's auth, limits, validation, metrics and error shapes therefore apply
unchanged, and nothing goes back over HTTP. Any other request to the proxy path is left to the proxy route, which
answers as the proxy does (``proxy_route``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from litestar import Response, route
from litestar.enums import HttpMethod, ScopeType
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send

from service.domain.endpoints import ENDPOINTS, app_of, parse_request_path

TARGET_HEADER = b"x-fal-target-url"
METHODS: tuple[HttpMethod, ...] = (HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT)
MAX_TARGET_CHARS = 4096  # far beyond any URL fal's clients build (the longest carry an encoded fal_webhook)
INVALID_REQUEST = "Invalid request"
INVALID_TARGET = "Invalid x-fal-target-url header"
QUEUE_HOST, RUN_HOST, REST_HOST = "queue.fal.run", "fal.run", "rest.fal.ai"
APPS = frozenset(app_of(endpoint_id) for endpoint_id in ENDPOINTS)
# One decoded path segment: printable ASCII without the characters a path would need escaped.
SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+")


@dataclass(frozen=True, slots=True)
class Mapped:
    """The gateway route a target maps onto: the path as routed (decoded), as sent, and the query string."""

    path: str
    raw_path: bytes
    query_string: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    status_code: int
    message: str


def map_target(target: str | None) -> Mapped | Rejected:
    """The gateway route that ``target`` (the header's value) stands for, or the proxy's refusal of it."""
    url = _parsed(target)
    if url is None:
        return Rejected(400, INVALID_REQUEST)
    host = (url.hostname or "").lower()
    if not any(host == domain or host.endswith(f".{domain}") for domain in ("fal.ai", "fal.run")):
        return Rejected(412, INVALID_TARGET)
    path = _safe_path(url)
    prefix = _served_prefix(host, path) if path is not None else None
    if prefix is None:
        return Rejected(400, INVALID_REQUEST)
    return Mapped(f"{prefix}/{path}", f"{prefix}{url.path}".encode("ascii"), url.query.encode("ascii"))


def _parsed(target: str | None) -> SplitResult | None:
    """The target as an absolute URL of printable ASCII and a sane length; None if it is not one."""
    if not target or len(target) > MAX_TARGET_CHARS or not target.isascii() or not target.isprintable():
        return None
    try:
        url = urlsplit(target)
        _ = url.port  # raises on a port that is not a number in range
    except ValueError:
        return None
    return url if url.hostname else None


def _safe_path(url: SplitResult) -> str | None:
    """The decoded path without its leading ``/``, for an https URL with no userinfo and the default port whose
    every segment is plain (no ``.``/``..``, no empty segment, no escaped separator or control character)."""
    plain_https = url.scheme == "https" and url.username is None and url.password is None and url.port in (None, 443)
    if not plain_https or "%2f" in url.path.lower() or "%5c" in url.path.lower():
        return None  # an escaped separator would route differently from how it reads
    segments = unquote(url.path).split("/")
    if segments[0] or not all(SEGMENT.fullmatch(part) and part not in {".", ".."} for part in segments[1:]):
        return None
    return "/".join(segments[1:])


def _served_prefix(host: str, path: str) -> str | None:
    """The gateway prefix for a path on one of fal's hosts, if the gateway serves it there."""
    if host == RUN_HOST:
        served = path in ENDPOINTS
    elif host == QUEUE_HOST:
        request = parse_request_path(path)
        served = path in ENDPOINTS or (request is not None and request.app in APPS)
    else:
        served = host == REST_HOST and path.startswith("storage/")
    return {RUN_HOST: "/run", QUEUE_HOST: "/queue", REST_HOST: "/rest"}[host] if served else None


def _target_of(scope: Scope) -> str | None:
    """The one ``x-fal-target-url`` value (None if absent or given more than once)."""
    values = [value for name, value in scope.get("headers", ()) if name == TARGET_HEADER]
    return values[0].decode("latin-1") if len(values) == 1 else None


def proxy_dispatch(app: ASGIApp, proxy_path: str) -> ASGIApp:
    """Wrap the app's ASGI handler (before routing): a proxied request whose target maps is dispatched to it."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["path"] == proxy_path and scope["method"] in METHODS:
            mapped = map_target(_target_of(scope))
            if isinstance(mapped, Mapped):
                scope["state"]["proxied"] = True  # logged with the request
                rewritten: Any = {
                    **scope,
                    "path": mapped.path,
                    "raw_path": mapped.raw_path,
                    "query_string": mapped.query_string,
                }
                await app(rewritten, receive, send)
                return
        await app(scope, receive, send)

    return handle


def proxy_route(proxy_path: str) -> HTTPRouteHandler:
    """The proxy path's own route: reached only by requests ``proxy_dispatch`` did not dispatch, which it refuses
    as ``@fal-ai/server-proxy`` does (a JSON string; 405 for other methods comes from routing)."""

    async def refuse(scope: Scope) -> Response[bytes]:
        mapped = map_target(_target_of(scope))
        # A target that maps never gets here while proxy_dispatch wraps the app (create_app installs both).
        refusal = mapped if isinstance(mapped, Rejected) else Rejected(400, INVALID_REQUEST)
        body = json.dumps(refusal.message).encode()
        return Response(content=body, status_code=refusal.status_code, media_type="application/json")

    return route(proxy_path, http_method=list(METHODS), include_in_schema=False)(refuse)
