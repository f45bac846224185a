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

from service.errors import GatewayError, to_gateway_error
from service.metrics import Metrics

log = structlog.get_logger("service.http")


def request_context_middleware(metrics: Metrics) -> Any:
    """Middleware factory: adds ``x-fal-request-id`` to every response and logs one line per request.

    The id is the gateway request id once a handler has assigned one (``request.state.fal_request_id``), else a
    fresh one, so every response (401, 404, 422 included) carries an id that also appears in the logs.
    """

    def middleware(app: ASGIApp) -> ASGIApp:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            fallback_id = str(uuid.uuid4())
            status = {"code": 500}
            structlog.contextvars.clear_contextvars()

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                    headers = MutableScopeHeaders.from_message(message)
                    if "x-fal-request-id" not in headers:
                        state = scope.get("state", {})
                        headers["x-fal-request-id"] = state.get("fal_request_id", fallback_id)
                await send(message)

            try:
                await app(scope, receive, send_with_id)
            finally:
                route = _route_of(scope)
                method = str(scope.get("method", ""))
                elapsed = time.perf_counter() - started
                metrics.http_requests.labels(
                    method=method, route=route, status_class=f"{status['code'] // 100}xx"
                ).inc()
                metrics.http_duration.labels(route=route).observe(elapsed)
                state = scope.get("state", {})
                log.info(
                    "http_request",
                    method=method,
                    route=route,
                    status=status["code"],
                    duration_ms=round(elapsed * 1000, 1),
                    tenant_id=state.get("tenant_id"),
                    request_id=state.get("fal_request_id", fallback_id),
                )

        return handle

    return middleware


def _route_of(scope: Scope) -> str:
    template = scope.get("path_template")
    return str(template) if template else "unmatched"


def exception_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Answer any exception with the fal-shaped error ``service.errors.EXCEPTION_TABLE`` maps it to (§6.1, §12.7)."""
    error = to_gateway_error(exc)
    if error.status_code >= 500 and not isinstance(exc, GatewayError):
        log.error("unhandled_exception", error=type(exc).__name__, exc_info=not isinstance(exc, RedisError))
    # Unmatched routes never reach the middleware, so the id is set here too (the middleware keeps it).
    state = request.scope.get("state", {})
    request_id = state.get("fal_request_id") or str(uuid.uuid4())
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
