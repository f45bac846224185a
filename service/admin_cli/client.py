"""``AdminClient``: a synchronous HTTP client of the gateway's admin API, and the two ways a call can fail."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

USER_AGENT = "seedance-gateway-cli/0.1"
MAX_CONNECT_SECONDS = 5.0


class ApiError(Exception):
    """The gateway answered with an error status; ``body`` is its parsed JSON (or None if it was not JSON)."""

    def __init__(self, status_code: int, body: Any, text: str, headers: httpx.Headers) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.body = body
        self.text = text
        self.headers = headers


class Unreachable(Exception):
    """No HTTP answer at all: connection refused, DNS, TLS or timeout."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Connection:
    """Where the admin API is and how to talk to it. ``token`` is sent, never shown."""

    base_url: str
    token: str
    actor: str
    verify: ssl.SSLContext | bool = True
    timeout_seconds: float = 30.0


class AdminClient:
    """One method per admin API operation; each returns the decoded JSON body of a successful response."""

    def __init__(self, connection: Connection, *, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = connection.base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {connection.token}",
                "X-Gateway-Actor": connection.actor,
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            },
            verify=connection.verify,
            timeout=httpx.Timeout(
                connection.timeout_seconds, connect=min(connection.timeout_seconds, MAX_CONNECT_SECONDS)
            ),
            transport=transport,
            follow_redirects=False,  # a redirect must never carry the admin token to another origin
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # Tenants

    def create_tenant(self, body: dict[str, Any]) -> Any:
        return self._call("POST", "/admin/tenants", body)

    def list_tenants(self) -> Any:
        return self._call("GET", "/admin/tenants")

    def get_tenant(self, tenant_id: str) -> Any:
        return self._call("GET", _tenant_path(tenant_id))

    def update_tenant(self, tenant_id: str, patch: dict[str, Any]) -> Any:
        return self._call("PATCH", _tenant_path(tenant_id), patch)

    def delete_tenant(self, tenant_id: str) -> Any:
        return self._call("DELETE", _tenant_path(tenant_id))

    # Keys

    def create_key(self, tenant_id: str, body: dict[str, Any]) -> Any:
        return self._call("POST", f"{_tenant_path(tenant_id)}/keys", body)

    def list_keys(self, tenant_id: str) -> Any:
        return self._call("GET", f"{_tenant_path(tenant_id)}/keys")

    def revoke_key(self, tenant_id: str, key_id: str) -> Any:
        return self._call("DELETE", _key_path(tenant_id, key_id))

    def rotate_key(self, tenant_id: str, key_id: str, body: dict[str, Any]) -> Any:
        return self._call("POST", f"{_key_path(tenant_id, key_id)}/rotate", body)

    # Webhooks

    def list_deliveries(self, query: dict[str, str | int]) -> Any:
        return self._call("GET", "/admin/webhooks/deliveries", query=query)

    def get_delivery(self, delivery_id: str) -> Any:
        return self._call("GET", _delivery_path(delivery_id))

    def redeliver(self, delivery_id: str) -> Any:
        return self._call("POST", f"{_delivery_path(delivery_id)}/redeliver")

    def redeliver_failed(self, tenant_id: str, body: dict[str, Any]) -> Any:
        return self._call("POST", f"{_tenant_path(tenant_id)}/webhooks/redeliver", body)

    def rotate_webhook_secret(self, tenant_id: str) -> Any:
        return self._call("POST", f"{_tenant_path(tenant_id)}/webhook-secret")

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, query: dict[str, str | int] | None = None
    ) -> Any:
        try:
            response = self._http.request(method, path, json=body, params=query)
        except httpx.TimeoutException as exc:
            raise Unreachable(self.base_url, f"timed out ({type(exc).__name__})") from None
        except httpx.RequestError as exc:  # connect, TLS, protocol and decoding failures: no usable answer
            raise Unreachable(self.base_url, _reason(exc)) from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.is_error or response.is_redirect:
            raise ApiError(response.status_code, payload, response.text, response.headers)
        if payload is None:
            raise ApiError(response.status_code, None, response.text, response.headers)
        return payload


def _tenant_path(tenant_id: str) -> str:
    return f"/admin/tenants/{quote(tenant_id, safe='')}"


def _key_path(tenant_id: str, key_id: str) -> str:
    return f"{_tenant_path(tenant_id)}/keys/{quote(key_id, safe='')}"


def _delivery_path(delivery_id: str) -> str:
    return f"/admin/webhooks/deliveries/{quote(delivery_id, safe='')}"


def _reason(exc: httpx.RequestError) -> str:
    """The innermost cause, which names the real problem (refused, certificate verify failed, ...)."""
    cause: BaseException = exc
    for _ in range(10):  # bounded: a chain is never that deep, and could in principle loop
        inner = cause.__cause__ or cause.__context__
        if inner is None:
            break
        cause = inner
    text = str(cause) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
