"""HTTP plumbing shared by every route: the request id header, one log line per request, the exception handler."""

from __future__ import annotations

import ipaddress
import time
import uuid
from typing import Any, cast

import httpx
import structlog
from litestar import Request, Response
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.exceptions import RedisError

from service import timing
from service.errors import GatewayError, to_gateway_error
from service.metrics import Metrics

log = structlog.get_logger("service.http")
SANDBOX_HEADER = "x-gateway-sandbox"  # on every response to a sandbox tenant's request, once it is authenticated


def request_context_middleware(metrics: Metrics) -> Any:
    """Middleware factory: ids on every response and one canonical log line and set of metrics per request.

    ``x-fal-request-id`` is the gateway request id once a handler has assigned one (``request.state.fal_request_id``),
    else a fresh one, so every response (401, 404, 422 included) carries an id that also appears in the logs. A
    caller's own ``x-request-id`` (printable, at most 128 characters) is logged and echoed; without one, the
    gateway's id is returned there too.
    """

    def middleware(app: ASGIApp) -> ASGIApp:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            tally = timing.open_tally()
            status = 500
            structlog.contextvars.clear_contextvars()
            caller_id = _caller_request_id(scope)

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = MutableScopeHeaders.from_message(message)
                    request_id = headers.get("x-fal-request-id")
                    if request_id is None:
                        request_id = _request_id(scope)
                        headers["x-fal-request-id"] = request_id
                    headers["x-request-id"] = caller_id or request_id
                    if scope.get("state", {}).get("sandbox"):
                        headers[SANDBOX_HEADER] = "true"
                await send(message)

            try:
                await app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route, method = route_label(scope), str(scope.get("method", ""))
                metrics.http_requests.labels(method=method, route=route, status_class=f"{status // 100}xx").inc()
                metrics.http_duration.labels(route=route).observe(elapsed)
                if route not in WAITING_ROUTES:
                    metrics.http_overhead.labels(route=route).observe(max(0.0, elapsed - tally.upstream_seconds))
                log.info(
                    "http_request",
                    method=method,
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    upstream_ms=round(tally.upstream_seconds * 1000, 2),
                    gateway_ms=round((elapsed - tally.upstream_seconds) * 1000, 2),
                    tenant_id=scope.get("state", {}).get("tenant_id"),
                    proxied=scope.get("state", {}).get("proxied", False),  # came through the server proxy
                    **tally.facts,
                    request_id=_request_id(scope),
                    caller_request_id=caller_id,
                )

        return handle

    return middleware


QUEUE_TEMPLATE = "/queue/{fal_path}"
SUBMIT_ROUTE = "/queue/{endpoint_id}"
RESULT_ROUTE = "/queue/{app}/requests/{request_id}"
STATUS_ROUTE = RESULT_ROUTE + "/status"
STREAM_ROUTE = STATUS_ROUTE + "/stream"
CANCEL_ROUTE = RESULT_ROUTE + "/cancel"
RUN_ROUTE = "/run/{endpoint_id}"  # Litestar's own template
MAX_CALLER_ID = 128
# Routes whose time is mostly spent waiting for a job, not working: no overhead is observed for them.
WAITING_ROUTES = frozenset({STREAM_ROUTE, RUN_ROUTE})


def route_label(scope: Scope) -> str:
    """The route template, with fal's queue calls told apart (one Litestar route serves each method of them)."""
    template = scope.get("path_template")
    if not template:
        return "unmatched"
    if template == QUEUE_TEMPLATE:
        method, path = scope.get("method"), str(scope.get("path", ""))
        if method == "POST":
            return SUBMIT_ROUTE
        if method == "PUT":
            return CANCEL_ROUTE
        if path.endswith("/status/stream"):
            return STREAM_ROUTE
        return STATUS_ROUTE if path.endswith("/status") else RESULT_ROUTE
    return str(template)


def _request_id(scope: Scope) -> str:
    state = scope.setdefault("state", {})
    request_id = state.get("fal_request_id") or state.get("fallback_request_id")
    if request_id is None:
        request_id = state["fallback_request_id"] = str(uuid.uuid4())
    return str(request_id)


def _caller_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            if 0 < len(value) <= MAX_CALLER_ID and all(0x21 <= byte <= 0x7E for byte in value):
                return value.decode("ascii")
            return None
    return None


def exception_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Answer any exception with the fal-shaped error ``service.errors.EXCEPTION_TABLE`` maps it to (§6.1, §12.7)."""
    error = to_gateway_error(exc)
    if error.status_code >= 500 and not isinstance(exc, GatewayError):
        log.error("unhandled_exception", error=type(exc).__name__, exc_info=not isinstance(exc, RedisError))
    # Unmatched routes never reach the middleware, so the id is set here too (the middleware keeps it).
    request_id = _request_id(request.scope)
    return Response(
        content=error.body(),
        status_code=error.status_code,
        media_type="application/json",
        headers={"x-fal-request-id": request_id, **error.response_headers()},
    )


def in_process_transport(app: Any) -> httpx.AsyncBaseTransport:
    """An httpx transport that calls an ASGI app in-process (Litestar's ASGI types are narrower than httpx's)."""
    return httpx.ASGITransport(app=cast("Any", app))


def client_address(scope: Scope, trusted_proxy_hops: int) -> str:
    """The caller's IP address. With ``trusted_proxy_hops`` proxies in front, the address that the outermost trusted
    proxy saw is taken from ``X-Forwarded-For``; anything that is not an IP address becomes ``unknown``."""
    peer = scope.get("client")
    address = peer[0] if peer else "unknown"
    if trusted_proxy_hops > 0:
        forwarded = [h for name, h in scope.get("headers", []) if name == b"x-forwarded-for"]
        hops = [part.strip() for value in forwarded for part in value.decode("latin-1").split(",") if part.strip()]
        if len(hops) >= trusted_proxy_hops:
            address = hops[-trusted_proxy_hops]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return "unknown"
