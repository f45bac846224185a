"""The transport to fal (service/upstream/transport.py) against real loopback servers: what it sends, what it keeps
alive, and the mapping of failures the money depends on. Only a failure before a byte of the request could have
been written may be a connect error ("not sent": a submit may be retried); every other one is a read error or a
read timeout (fal may have acted: a submit is never repeated)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from service.upstream.transport import PooledTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"


@dataclass
class Loopback:
    """A raw TCP server on 127.0.0.1: every connection it accepted and every request head it read."""

    port: int = 0
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def _head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[Loopback]:
    loopback = Loopback()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loopback.connections += 1
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    loopback.port = server.sockets[0].getsockname()[1]
    try:
        async with server:
            yield loopback
    finally:
        server.close()


def _answering(loopback_heads: list[bytes], body: bytes = b'{"ok": true}') -> Handler:
    """A keep-alive server that answers every request on a connection with ``body``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await _head(reader)
            loopback_heads.append(head)
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                0,
            )
            if length:
                await reader.readexactly(length)
            writer.write(ANSWER + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()

    return handle


@pytest.fixture
async def transport() -> AsyncIterator[PooledTransport]:
    pooled = PooledTransport(max_connections=4)
    yield pooled
    await pooled.aclose()


async def _client(transport: PooledTransport, **timeouts: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0, **timeouts))


async def test_an_answer_arrives_whole_and_the_connection_is_kept_alive(transport: PooledTransport) -> None:
    heads: list[bytes] = []
    async with serving(_answering(heads)) as loopback, await _client(transport) as client:
        first = await client.post(f"{loopback.url}/queue/x?a=1", json={"prompt": "p"}, headers={"X-Fal-A": "1"})
        second = await client.get(f"{loopback.url}/queue/x/status")
    assert (first.status_code, first.json(), second.json()) == (200, {"ok": True}, {"ok": True})
    assert first.headers.get_list("set-cookie") == ["a=1", "b=2"], "repeated headers are all kept"
    assert loopback.connections == 1, "the second request reused the pooled connection"
    request_line, *lines = heads[0].decode().split("\r\n")
    assert request_line == "POST /queue/x?a=1 HTTP/1.1"
    names = {line.split(":")[0].lower() for line in lines if line}
    assert "x-fal-a" in names
    assert "cookie" not in names
    assert heads[1].startswith(b"GET /queue/x/status HTTP/1.1")


async def test_a_redirect_is_answered_not_followed(transport: PooledTransport) -> None:
    async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with serving(redirect) as loopback, await _client(transport) as client:
        response = await client.get(loopback.url)
    assert response.status_code == 302
    assert loopback.connections == 1


async def test_nobody_listening_is_not_sent(transport: PooledTransport) -> None:
    async with serving(_answering([])) as loopback:
        url = loopback.url
    async with await _client(transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(url, json={})


async def test_a_connection_dropped_after_the_request_is_unknown(transport: PooledTransport) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)  # the request arrived: fal may act on it

    async with serving(drop) as loopback, await _client(transport) as client:
        with pytest.raises(httpx.TransportError) as raised:
            await client.post(loopback.url, json={})
    assert not isinstance(raised.value, NOT_SENT), raised.value


async def test_a_malformed_answer_is_unknown(transport: PooledTransport) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    async with serving(garbage) as loopback, await _client(transport) as client:
        with pytest.raises(httpx.TransportError) as raised:
            await client.get(loopback.url)
    assert not isinstance(raised.value, NOT_SENT), raised.value


async def test_no_answer_in_time_is_a_read_timeout(transport: PooledTransport) -> None:
    answered = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)
        await answered.wait()

    async with serving(silent) as loopback, await _client(transport, read=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(loopback.url, json={})
        answered.set()


async def test_waiting_for_a_free_connection_too_long_is_not_sent() -> None:
    release = asyncio.Event()
    heads: list[bytes] = []

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await _head(reader))
        await release.wait()
        writer.write(ANSWER + b"Content-Length: 2\r\n\r\n{}")
        await writer.drain()

    pooled = PooledTransport(max_connections=1)
    try:
        async with serving(slow) as loopback, await _client(pooled, pool=0.2, connect=0.3) as client:
            holding = asyncio.create_task(client.get(loopback.url))
            while not heads:  # the one connection is taken
                await asyncio.sleep(0.01)
            with pytest.raises(NOT_SENT):
                await client.post(loopback.url, json={})
            release.set()
            assert (await holding).status_code == 200
        assert len(heads) == 1, "the refused request never reached the server"
    finally:
        await pooled.aclose()


def test_one_transport_serves_successive_event_loops() -> None:
    """The CLI and the tests run more than one loop in a process: a session belongs to the loop it was made in, so
    a transport used in a new loop opens a new one rather than failing on the old loop's."""
    pooled = PooledTransport(max_connections=2)

    async def once() -> int:
        async with serving(_answering([])) as loopback:
            response = await pooled.handle_async_request(httpx.Request("GET", loopback.url))
            return response.status_code

    assert asyncio.run(once()) == 200
    assert asyncio.run(once()) == 200

    async def close() -> None:
        await pooled.aclose()

    asyncio.run(close())
