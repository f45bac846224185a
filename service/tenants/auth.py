"""Authentication of tenant keys (``Authorization: Key|Bearer <key_id>:<secret>``) and of the admin token."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.domain.apikeys import parse_authorization
from service.errors import Unauthorized
from service.metrics import Metrics
from service.tenants.store import Principal, TenantStore


async def authenticate_tenant(request: Request[Any, Any, Any], tenants: TenantStore, metrics: Metrics) -> Principal:
    presented = parse_authorization(request.headers.get("authorization"))
    if presented is None:
        metrics.requests_rejected.labels(reason="auth_malformed").inc()
        raise Unauthorized("Missing or malformed credentials: send 'Authorization: Key <key_id>:<secret>'")
    principal = await tenants.authenticate(presented)
    if principal is None:
        metrics.requests_rejected.labels(reason="auth_rejected").inc()
        raise Unauthorized("Invalid API key")
    request.state.tenant_id = principal.tenant_id
    return principal


def requires_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for /admin: ``Authorization: Bearer <GATEWAY_ADMIN_TOKEN>``, compared in constant time."""
    expected: str | None = connection.app.state.admin_token
    if not expected:
        raise Unauthorized("The admin API is disabled: set GATEWAY_ADMIN_TOKEN to enable it")
    scheme, _sep, token = (connection.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthorized("Invalid admin token")
