"""The pinned guarded transport (service.netguard) against real HTTP and HTTPS servers on loopback, with fake DNS.

The servers record every connection they accept (the local address it arrived at, the Host header, the TLS server
name), so each test can say which server the client reached, if any. 127.0.0.2 stands in for a public address where
a test needs a second, allowed destination: it is allowlisted by its own /32, and nothing but loopback is reachable
offline.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import trustme

from service.domain.urls import PUBLIC_ONLY, OutboundPolicy, parse_networks
from service.netguard import GuardedClient, Resolver, UnsafeDestination, guarded_transport

LOOPBACK_ALLOWED = OutboundPolicy(allowed_networks=parse_networks("127.0.0.0/8"))
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@dataclass
class Seen:
    """What one server saw: one entry per connection it accepted."""

    addresses: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)


@asynccontextmanager
async def http_server(
    address: str, port: int = 0, *, tls: ssl.SSLContext | None = None, response: bytes = RESPONSE
) -> AsyncIterator[tuple[int, Seen]]:
    """An HTTP server on ``address`` that reads each request head, records it and answers ``response``."""
    seen = Seen()
    if tls is not None:

        def record_server_name(_: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
            seen.server_names.append(name)

        tls.sni_callback = record_server_name

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.addresses.append(writer.get_extra_info("sockname")[0])
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        seen.hosts.extend(line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("host:"))
        writer.write(response)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, address, port, ssl=tls)
    async with server:
        yield server.sockets[0].getsockname()[1], seen


def resolving(*answers: Sequence[str]) -> tuple[Resolver, list[str]]:
    """A resolver that gives ``answers[0]`` to the first lookup, ``answers[1]`` to the second, and so on (the last
    one from then on), and the list of the names it was asked for."""
    asked: list[str] = []

    async def resolve(host: str) -> Sequence[str]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    return resolve, asked


def client(policy: OutboundPolicy, resolver: Resolver, verify: ssl.SSLContext | bool = True) -> GuardedClient:
    return GuardedClient(guarded_transport(policy, resolver=resolver, verify=verify))


async def test_a_name_resolving_to_loopback_is_refused_without_a_connection() -> None:
    resolve, asked = resolving(["127.0.0.1"])
    async with http_server("127.0.0.1") as (port, seen), client(PUBLIC_ONLY, resolve) as guarded:
        with pytest.raises(UnsafeDestination, match="loopback"):
            await guarded.get(f"http://receiver.test:{port}/hook")
        with pytest.raises(UnsafeDestination, match="loopback"):
            await guarded.get(f"http://2130706433:{port}/hook")  # a literal: refused without a lookup

    assert asked == ["receiver.test"]
    assert seen.addresses == []


async def test_an_allowlisted_name_is_reached_with_its_own_host_header() -> None:
    resolve, asked = resolving(["127.0.0.1"])
    async with http_server("127.0.0.1") as (port, seen), client(LOOPBACK_ALLOWED, resolve) as guarded:
        response = await guarded.get(f"http://receiver.test:{port}/hook?x=1")

    assert response.status_code == 200
    assert response.text == "ok"
    assert asked == ["receiver.test"]
    assert seen.addresses == ["127.0.0.1"]
    assert seen.hosts == [f"receiver.test:{port}"]


async def test_dns_rebinding_cannot_move_the_connection_to_a_refused_address() -> None:
    # The first answer is allowed (127.0.0.2, by its /32); every later one is 127.0.0.1, which is refused. A client
    # that resolved again to connect would reach the server on 127.0.0.1.
    policy = OutboundPolicy(allowed_networks=parse_networks("127.0.0.2/32"))
    resolve, asked = resolving(["127.0.0.2"], ["127.0.0.1"])
    async with AsyncExitStack() as stack:
        port, refused = await stack.enter_async_context(http_server("127.0.0.1"))
        _, checked = await stack.enter_async_context(http_server("127.0.0.2", port))
        guarded = await stack.enter_async_context(client(policy, resolve))

        response = await guarded.get(f"http://rebind.test:{port}/hook")
        with pytest.raises(UnsafeDestination, match="loopback"):
            await guarded.get(f"http://rebind.test:{port}/hook")

    assert response.text == "ok"
    assert asked == ["rebind.test", "rebind.test"], "one lookup per request, none by the connection"
    assert checked.addresses == ["127.0.0.2"]
    assert checked.hosts == [f"rebind.test:{port}"]
    assert refused.addresses == []


async def test_a_rebinding_answer_is_never_looked_up_when_the_checked_address_fails() -> None:
    policy = OutboundPolicy(allowed_networks=parse_networks("127.0.0.2/32"))
    resolve, asked = resolving(["127.0.0.2"], ["127.0.0.1"])
    async with http_server("127.0.0.1") as (port, seen), client(policy, resolve) as guarded:
        with pytest.raises(httpx.ConnectError):
            await guarded.get(f"http://rebind.test:{port}/hook")  # nothing listens on 127.0.0.2

    assert asked == ["rebind.test"]
    assert seen.addresses == []


async def test_one_refused_address_among_allowed_ones_refuses_the_name() -> None:
    policy = OutboundPolicy(allowed_networks=parse_networks("127.0.0.1/32"))
    resolve, _ = resolving(["127.0.0.1", "10.0.0.7"])
    async with http_server("127.0.0.1") as (port, seen), client(policy, resolve) as guarded:
        with pytest.raises(UnsafeDestination, match="private"):
            await guarded.get(f"http://mixed.test:{port}/hook")

    assert seen.addresses == []


async def test_the_checked_addresses_are_tried_in_order() -> None:
    resolve, asked = resolving(["127.0.0.3", "127.0.0.1"])  # nothing listens on 127.0.0.3
    async with http_server("127.0.0.1") as (port, seen), client(LOOPBACK_ALLOWED, resolve) as guarded:
        response = await guarded.get(f"http://receiver.test:{port}/hook")

    assert response.text == "ok"
    assert asked == ["receiver.test"]
    assert seen.addresses == ["127.0.0.1"]


async def test_a_redirect_is_not_followed_and_a_followed_one_is_checked_again() -> None:
    policy = OutboundPolicy(allowed_networks=parse_networks("127.0.0.2/32"))
    resolve, _ = resolving(["127.0.0.2"])
    async with AsyncExitStack() as stack:
        port, target = await stack.enter_async_context(http_server("127.0.0.1"))
        redirect = f"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/secret\r\nContent-Length: 0\r\n\r\n"
        _, seen = await stack.enter_async_context(http_server("127.0.0.2", port, response=redirect.encode()))
        guarded = await stack.enter_async_context(client(policy, resolve))

        response = await guarded.get(f"http://redirector.test:{port}/hook")
        with pytest.raises(UnsafeDestination, match="loopback"):
            await guarded.get(f"http://redirector.test:{port}/hook", follow_redirects=True)

    assert response.status_code == 302
    assert len(seen.addresses) == 2
    assert target.addresses == []


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_https_verifies_the_host_name_while_connecting_to_the_pinned_address(ca: trustme.CA) -> None:
    resolve, asked = resolving(["127.0.0.1"])
    verify = client_tls(ca)
    async with (
        http_server("127.0.0.1", tls=server_tls(ca, "receiver.test")) as (port, seen),
        client(LOOPBACK_ALLOWED, resolve, verify=verify) as guarded,
    ):
        response = await guarded.get(f"https://receiver.test:{port}/hook")

    assert response.text == "ok"
    assert asked == ["receiver.test"]
    assert seen.addresses == ["127.0.0.1"]
    assert seen.server_names == ["receiver.test"]
    assert seen.hosts == [f"receiver.test:{port}"]


@pytest.mark.parametrize("names", [("other.test",), ("127.0.0.1",)])
async def test_https_refuses_a_certificate_for_another_name_even_for_the_pinned_ip(
    ca: trustme.CA, names: tuple[str, ...]
) -> None:
    resolve, _ = resolving(["127.0.0.1"])
    async with (
        http_server("127.0.0.1", tls=server_tls(ca, *names)) as (port, seen),
        client(LOOPBACK_ALLOWED, resolve, verify=client_tls(ca)) as guarded,
    ):
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await guarded.get(f"https://receiver.test:{port}/hook")

    assert seen.server_names == ["receiver.test"]
    assert seen.hosts == []
