"""fal's storage API as the gateway calls it with its own fal key: initiate an upload, obtain (and cache) a CDN
upload token, and stream an upload's bytes to the URL fal chose, every request through the outbound SSRF guard."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from service.errors import UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from service.netguard import GuardedClient, UnsafeDestination

TOKEN_MARGIN_SECONDS = 60.0  # a cached CDN token is renewed this long before fal says it expires
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


@dataclass(frozen=True, slots=True)
class CdnToken:
    token: str
    token_type: str
    base_url: str
    expires_at: float


class FalStorage:
    def __init__(
        self, client: GuardedClient, *, rest_url: str, fal_key: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._rest = rest_url.rstrip("/")
        self._auth = {"Authorization": f"Key {fal_key}"}
        self._clock = clock
        self._token: CdnToken | None = None
        self._token_lock = asyncio.Lock()

    async def initiate(self, storage_type: str, body: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
        """fal's ``upload/initiate`` with the gateway's key: ``{"upload_url": ..., "file_url": ...}``."""
        answer = await self._json(
            "POST",
            f"{self._rest}/storage/upload/initiate",
            params={"storage_type": storage_type},
            json=dict(body),
            headers={**headers, **self._auth},
        )
        if not isinstance(answer.get("upload_url"), str) or not isinstance(answer.get("file_url"), str):
            raise UpstreamUnavailable("fal's storage API answered initiate without upload_url and file_url")
        return answer

    async def cdn_token(self) -> CdnToken:
        """fal's CDN upload token for the gateway's key, cached until shortly before it expires."""
        async with self._token_lock:
            if self._token is None or self._token.expires_at - TOKEN_MARGIN_SECONDS <= self._clock():
                answer = await self._json(
                    "POST",
                    f"{self._rest}/storage/auth/token",
                    params={"storage_type": "fal-cdn-v3"},
                    json={},
                    headers=self._auth,
                )
                self._token = CdnToken(
                    token=str(answer["token"]),
                    token_type=str(answer.get("token_type") or "Bearer"),
                    base_url=str(answer["base_url"]).rstrip("/"),
                    expires_at=_epoch(answer.get("expires_at"), self._clock() + 300),
                )
            return self._token

    def forget_token(self) -> None:
        self._token = None

    async def send(
        self, method: str, url: str, body: AsyncIterator[bytes], headers: Mapping[str, str]
    ) -> httpx.Response:
        """Stream ``body`` to ``url`` (fal's upload URL, or its CDN), the answer read in full."""
        return await self._request(
            "fal's storage (upload)", method, url, content=body, headers=dict(headers), timeout=UPLOAD_TIMEOUT
        )

    async def _request(self, what: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One call to ``what``, its transport failures mapped to the gateway's upstream errors."""
        try:
            return await self._client.request(method, url, **kwargs)
        except UnsafeDestination as exc:
            raise UpstreamUnavailable(f"{what} was refused by the outbound guard: {exc}") from None
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"{what} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{what} could not be reached ({type(exc).__name__})") from None

    async def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        response = await self._request("fal's storage API", method, url, **kwargs)
        payload = _payload(response)
        if response.status_code in {401, 403}:  # the gateway's own key: nothing the tenant can fix
            raise UpstreamUnavailable(f"fal's storage API refused the gateway's fal key (HTTP {response.status_code})")
        if response.status_code >= 400:
            raise UpstreamRejected(response.status_code, payload)
        if not isinstance(payload, dict):
            raise UpstreamUnavailable("fal's storage API answered with something other than a JSON object")
        return payload


def _payload(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"detail": f"fal's storage answered HTTP {response.status_code}"}


def upstream_payload(response: httpx.Response) -> Any:
    """The JSON of an answer from fal's storage, or a fal-style detail when it is not JSON."""
    return _payload(response)


def _epoch(value: Any, default: float) -> float:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return default
    return default
