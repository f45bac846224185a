"""The SSRF guard for every URL the gateway did not choose: resolve once, check every address, connect to a checked one.

:mod:`service.domain.urls` holds the rules. Here a :class:`GuardedTransport` applies them to each request: it checks
the URL, resolves its host exactly once (an IP literal in any spelling is never resolved), refuses the request if
ANY address is refused, and then opens the TCP connection to one of those checked addresses, trying them in order
and never resolving again. The request keeps its URL, its Host header and its TLS server name, so SNI and
certificate verification are for the host name while the bytes go to the checked IP: a DNS server that answers a
public address to the check and a private one a moment later (DNS rebinding) has nothing to rebind. A pooled
keep-alive connection serves later requests to the same origin; each of them is checked first, and the connection
goes to an address checked under the same policy. A :class:`GuardedClient` never follows redirects and ignores
proxy settings from the environment (a proxy would resolve the name itself).
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore
import httpx

from service.domain.urls import UNRESTRICTED, IPAddress, OutboundPolicy, address_problem, ip_literal, url_problem

_DEFAULT_PORTS = {"http": 80, "https": 443}
_CREDENTIAL_HEADERS = ("authorization", "cookie")

Resolver = Callable[[str], Awaitable[Sequence[str]]]
"""Resolves a host name to its IP addresses (as text); injectable so that tests need no DNS."""


class UnsafeDestination(ValueError):
    """The URL may not be fetched: wrong scheme, credentials, an internal host, or an address the policy refuses."""


class HostUnresolved(UnsafeDestination):
    """The host has no address right now. Nothing was sent; unlike a refusal, this may pass (DNS is having a bad
    minute), so a webhook delivery tries again later."""


class FetchFailed(Exception):
    """The fetch was allowed but did not produce a usable body (transport error, status, redirect, timeout)."""


async def system_resolver(host: str) -> Sequence[str]:
    """The addresses the operating system resolves ``host`` to (the loop's ``getaddrinfo``, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def checked_host(url: str, policy: OutboundPolicy) -> str:
    """The host of ``url`` (as a resolver takes it), or :class:`UnsafeDestination` if the URL alone is refused."""
    problem = url_problem(url, policy)
    if problem is not None:
        raise UnsafeDestination(problem)
    return urlsplit(url).hostname or ""  # url_problem has refused a URL without a host


async def resolve_checked(host: str, policy: OutboundPolicy, resolver: Resolver) -> tuple[IPAddress, ...]:
    """Every address ``host`` has (resolved once; an IP literal is its own address), or :class:`UnsafeDestination`
    if there is none or ANY of them is refused: the connection could otherwise reach the refused one."""
    literal = ip_literal(host)
    if literal is not None:
        return (literal,)  # url_problem has checked it
    try:
        answers = await resolver(host)
    except (OSError, UnicodeError):  # socket.gaierror, or a name IDNA cannot encode
        answers = []
    if not answers:
        raise HostUnresolved("host does not resolve")
    addresses: list[IPAddress] = []
    for text in answers:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise UnsafeDestination("host resolves to an unreadable address") from None
        problem = address_problem(address, policy)
        if problem is not None:
            raise UnsafeDestination(f"host resolves to {problem}")
        if address not in addresses:
            addresses.append(address)
    return tuple(addresses)


async def check_destination(
    url: str, policy: OutboundPolicy, *, resolver: Resolver = system_resolver
) -> tuple[IPAddress, ...]:
    """The checked addresses of ``url``'s host, or :class:`UnsafeDestination` (see :func:`resolve_checked`)."""
    return await resolve_checked(checked_host(url, policy), policy, resolver)


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


@dataclass(frozen=True, slots=True)
class _Pin:
    host: str
    addresses: tuple[IPAddress, ...]


# The addresses checked for the request being sent in this task; httpcore connects inside the sending task.
_PIN: contextvars.ContextVar[_Pin | None] = contextvars.ContextVar("netguard_pin", default=None)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, except that a TCP connection goes to the addresses pinned for the request."""

    def __init__(self) -> None:
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        pin = _PIN.get()
        if pin is None or pin.host != host.lower():
            raise httpcore.ConnectError("no checked address for this connection")  # fail closed
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in pin.addresses:
            try:
                return await self._network.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError("no checked address for this connection")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class _PinnedHTTPTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request and response mapping, error translation) over a connection pool whose
    connections go to the pinned addresses."""

    def __init__(self, verify: ssl.SSLContext | bool, limits: httpx.Limits) -> None:
        context = httpx.create_ssl_context(verify=verify)
        super().__init__(verify=context, limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(),
        )


class GuardedTransport(httpx.AsyncBaseTransport):
    """Checks every request against the policy and, when :attr:`pinned`, connects only to the checked addresses.

    Build it with :func:`guarded_transport`. With an ``inner`` transport (an in-process ASGI app, a test's mock) the
    destination is still checked, URL and resolved addresses alike, but the inner transport decides where the bytes
    go, so nothing is pinned. A request to one of the exact ``trusted_origins`` (scheme, host and port; the
    operator's own upstream, such as a simulator on loopback) may go to any address; through an inner transport its
    host is then not even resolved.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        send: httpx.AsyncBaseTransport,
        *,
        pinned: bool,
        resolver: Resolver,
        trusted_origins: Collection[str],
    ) -> None:
        origins = {entry: origin_of(entry) for entry in trusted_origins}
        bad = sorted(entry for entry, origin in origins.items() if origin is None)
        if bad:
            raise ValueError(f"trusted origins must look like scheme://host[:port]: {bad}")
        self.policy = policy
        self.pinned = pinned
        self._send = send
        self._resolver = resolver
        self._trusted = frozenset(origins.values())

    def policy_for(self, url: str) -> OutboundPolicy:
        """The policy a request to ``url`` is checked against: anything goes for a trusted origin."""
        return UNRESTRICTED if origin_of(url) in self._trusted else self.policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        policy = self.policy_for(url)
        host = checked_host(url, policy)
        if not self.pinned:
            if not policy.admits_every_address:
                await resolve_checked(host, policy, self._resolver)
            return await self._send.handle_async_request(request)
        addresses = await resolve_checked(host, policy, self._resolver)
        token = _PIN.set(_Pin(request.url.raw_host.decode("ascii").lower(), addresses))
        try:
            return await self._send.handle_async_request(request)
        finally:
            _PIN.reset(token)

    async def aclose(self) -> None:
        await self._send.aclose()


def guarded_transport(  # noqa: PLR0913 - each is the caller's to choose
    policy: OutboundPolicy,
    *,
    resolver: Resolver = system_resolver,
    trusted_origins: Collection[str] = (),
    verify: ssl.SSLContext | bool = True,
    inner: httpx.AsyncBaseTransport | None = None,
    limits: httpx.Limits | None = None,
) -> GuardedTransport:
    """The guard for ``policy``. Without ``inner``: real connections, each pinned to an address checked for the
    request (``verify`` and ``limits`` apply to them). With ``inner``: every request is checked, then handed to
    ``inner`` unpinned (for in-process transports, whose requests open no connection; closing the guard closes it).
    """
    if inner is not None:
        return GuardedTransport(policy, inner, pinned=False, resolver=resolver, trusted_origins=trusted_origins)
    pool = _PinnedHTTPTransport(verify, limits or httpx.Limits(max_connections=100, max_keepalive_connections=20))
    return GuardedTransport(policy, pool, pinned=True, resolver=resolver, trusted_origins=trusted_origins)


class GuardedClient(httpx.AsyncClient):
    """An httpx client for URLs the gateway did not choose: its only transport is a :class:`GuardedTransport`, it
    follows no redirect and reads no proxy or netrc settings from the environment (``SSL_CERT_FILE`` still counts).
    A refused request raises :class:`UnsafeDestination` from ``send``."""

    def __init__(self, transport: GuardedTransport, *, timeout: httpx.Timeout | float = 5.0) -> None:
        super().__init__(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)
        self.guard = transport


async def open_outbound(client: GuardedClient, url: str, headers: Mapping[str, str]) -> httpx.Response:
    """Start a streamed GET through the guard: the client's default credentials stay home, redirects are refused
    (even by a client told to follow them), and so are compressed bodies (decompression is unbounded). The caller
    reads the body and must close the response."""
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
