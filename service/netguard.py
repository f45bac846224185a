"""Outbound fetches to URLs the gateway did not choose: the resolved-address half of the SSRF guard and a bounded GET.

:mod:`service.domain.urls` refuses what can be refused from the URL alone; this module resolves the host and refuses
any private, loopback, link-local (cloud metadata), reserved or multicast address, then reads at most a prefix of
the body with no redirects and a total deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from urllib.parse import urlsplit

import httpx

from service.domain.urls import address_problem, url_problem

_CREDENTIAL_HEADERS = ("authorization", "cookie")
_DEFAULT_PORTS = {"http": 80, "https": 443}

Resolver = Callable[[str], Awaitable[Sequence[str]]]
"""Resolves a host name to its IP addresses (as text); injectable so that tests need no DNS."""


class UnsafeDestination(ValueError):
    """The URL may not be fetched: wrong scheme, credentials, an internal host, or an address that is not public."""


class FetchFailed(Exception):
    """The fetch was allowed but did not produce a usable body (transport error, status, redirect, timeout)."""


async def system_resolver(host: str) -> Sequence[str]:
    """The addresses the operating system resolves ``host`` to (the loop's ``getaddrinfo``, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def check_destination(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
    """Raise :class:`UnsafeDestination` unless ``url`` is syntactically safe and every address its host has is public.

    With ``allow_private`` only the syntax is checked and nothing is resolved: any address is allowed, so a lookup
    would only add latency (and the connection reports a name that does not resolve anyway).
    """
    problem = url_problem(url, allow_private=allow_private)
    if problem is not None:
        raise UnsafeDestination(problem)
    if allow_private:
        return
    host = urlsplit(url).hostname or ""  # url_problem has already refused a URL without a host
    try:
        addresses = await resolver(host)
    except (OSError, UnicodeError):  # socket.gaierror, or a name IDNA cannot encode
        addresses = []
    if not addresses:
        raise UnsafeDestination("host does not resolve")
    # ANY, not the first: the connection may use any of them (happy eyeballs, retries).
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise UnsafeDestination("host resolves to an unreadable address") from None
        problem = address_problem(address)
        if problem is not None:
            raise UnsafeDestination(problem)


async def fetch_prefix(  # noqa: PLR0913 - every bound is the caller's to choose
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    timeout: float,  # noqa: ASYNC109 - a configured total deadline, applied below with asyncio.timeout
    allow_private: bool,
    resolver: Resolver = system_resolver,
) -> bytes:
    """The first ``max_bytes`` (or fewer, if the body is shorter) of the body at ``url``.

    Raises :class:`UnsafeDestination` when the URL may not be fetched and :class:`FetchFailed` for anything else that
    goes wrong, including a redirect (it could point anywhere, past the check) and running past ``timeout`` seconds,
    which bounds the lookup, the connection and the whole body together.

    DNS rebinding: the check and httpx's connection resolve the name separately, so a hostile DNS server could
    answer a public address to the first and a private one to the second. That is accepted here because the body is
    only parsed for a size or hashed, never returned to a caller, so the worst case is a blind GET of an internal URL
    without credentials. A full fix pins the address: resolve once, then connect to that IP through a custom
    transport that keeps the original Host header and TLS server name.
    """
    if max_bytes < 1:
        raise ValueError("max_bytes must be positive")
    try:
        async with asyncio.timeout(timeout):
            await check_destination(url, allow_private=allow_private, resolver=resolver)
            return await _read_prefix(client, url, max_bytes)
    except TimeoutError:
        raise FetchFailed(f"no complete answer within {timeout:g} s") from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
        # The class name only: some messages quote the URL, and the reason gets logged (signed URLs carry tokens).
        raise FetchFailed(f"transport error ({type(exc).__name__})") from exc


async def _read_prefix(client: httpx.AsyncClient, url: str, max_bytes: int) -> bytes:
    response = await open_outbound(client, url, {"Range": f"bytes=0-{max_bytes - 1}"})
    try:
        if response.status_code not in {200, 206}:
            raise FetchFailed(f"HTTP {response.status_code}")
        # A server may ignore Range and send the whole file with 200: stop reading at max_bytes regardless.
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk[: max_bytes - len(body)]
            if len(body) >= max_bytes:
                break
        return bytes(body)
    finally:
        await response.aclose()


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` in lower case, without a default port, or None for a URL without scheme or host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if not scheme or not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}"


class Destinations:
    """Where outbound fetches may go: public addresses, plus the exact ``trusted_origins`` (scheme, host and port;
    the operator's own upstream, such as a simulator on loopback), or anywhere when ``allow_private``."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        trusted_origins: Collection[str] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        origins = {entry: origin_of(entry) for entry in trusted_origins}
        bad = sorted(entry for entry, origin in origins.items() if origin is None)
        if bad:
            raise ValueError(f"trusted origins must look like scheme://host[:port]: {bad}")
        self.allow_private = allow_private
        self.resolver = resolver
        self._trusted = frozenset(origins.values())

    def allows_private(self, url: str) -> bool:
        return self.allow_private or origin_of(url) in self._trusted

    async def check(self, url: str) -> None:
        await check_destination(url, allow_private=self.allows_private(url), resolver=self.resolver)


async def open_outbound(client: httpx.AsyncClient, url: str, headers: Mapping[str, str]) -> httpx.Response:
    """Start a streamed GET of a URL that is not ours: the client's default credentials stay home, redirects are
    refused (they could point anywhere, past the destination check), and so are compressed bodies (decompression is
    unbounded). The caller reads the body and must close the response."""
    request = client.build_request("GET", url, headers={**headers, "Accept-Encoding": "identity"})
    for name in _CREDENTIAL_HEADERS:
        request.headers.pop(name, None)
    response = await client.send(request, stream=True, follow_redirects=False, auth=None)
    problem = _refusal(response)
    if problem is not None:
        await response.aclose()
        raise FetchFailed(problem)
    return response


def _refusal(response: httpx.Response) -> str | None:
    if 300 <= response.status_code < 400:
        return f"redirect refused (HTTP {response.status_code})"
    if response.headers.get("content-encoding", "identity").strip().lower() not in {"", "identity"}:
        return "compressed response refused"
    return None
