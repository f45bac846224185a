"""The HTTP transport for fal's queue API: httpx's client interface over aiohttp's connection pool.

httpx's own pool (httpcore) checks every pooled connection for expiry and readability on every request, which made
it the gateway's largest cost under concurrency (about a third of a submit's CPU at 64 connections, most of it
``has_expired``/``is_socket_readable``). aiohttp's connector notices a closed connection from the event loop instead,
so taking a connection from the pool costs the same whatever its size.

The mapping of aiohttp's errors is what the money depends on: only an error raised before a byte of the request
could have been written (no connection could be made, or none was free in time) becomes one of httpx's connect
errors, which :class:`~service.upstream.fal.FalClient` treats as "not sent" and may retry. Every other error, a
dropped connection, a malformed answer or anything unforeseen, becomes a read error: fal may have acted on the
request, so its outcome is unknown and a submit is never repeated.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import aiohttp
import httpx

DEFAULT_KEEPALIVE_SECONDS = 4.0


class PooledTransport(httpx.AsyncBaseTransport):
    """One aiohttp session per event loop, opened on first use (a session belongs to the loop it was made in)."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._ssl = ssl_context if ssl_context is not None else httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _session_here(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=self._max_connections,
                keepalive_timeout=self._keepalive_seconds,
                ssl=self._ssl,
            )
            # No cookies, no proxies from the environment, no default headers: httpx already built the request.
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
            self._loop = loop
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session_here()
        timeouts = request.extensions.get("timeout", {})
        connect, pool, read = timeouts.get("connect"), timeouts.get("pool"), timeouts.get("read")
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=None if connect is None and pool is None else (connect or 0.0) + (pool or 0.0),
            sock_connect=connect,
            sock_read=read,
        )
        body = await request.aread()
        try:
            response = await session.request(
                request.method,
                str(request.url),
                headers=list(request.headers.multi_items()),
                data=body or None,
                allow_redirects=False,
                compress=None,
                timeout=timeout,
            )
            try:
                content = await response.read()
            finally:
                response.release()
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc), request=request) from exc
        except aiohttp.ServerTimeoutError as exc:
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(str(exc) or "server disconnected", request=request) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(content),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


class _Body(httpx.AsyncByteStream):
    """An answer already read in full (fal's queue answers are small JSON documents)."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._content
