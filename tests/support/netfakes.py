"""Fakes for the gateway's outbound fetches (media probe, image hashing): fake DNS and canned HTTP handlers."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

import httpx

PUBLIC_IP = "93.184.215.14"
DNS: dict[str, list[str]] = {
    "v3.fal.media": [PUBLIC_IP, "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "cdn.example.com": [PUBLIC_IP],
    "mirror.example.org": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "sneaky.example.com": [PUBLIC_IP, "10.0.0.7"],  # one private answer among public ones is enough to refuse
    "rebind.example.com": ["127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
    "v6loop.example.com": ["::1"],
    "mapped.example.com": ["::ffff:192.168.1.1"],
    "garbage.example.com": ["not-an-address"],
    "empty.example.com": [],
}

Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


async def fake_resolver(host: str) -> Sequence[str]:
    with contextlib.suppress(ValueError):
        return [str(ipaddress.ip_address(host))]  # like getaddrinfo, an IP literal resolves to itself
    if host not in DNS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return DNS[host]


def serving(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers)

    return handler


def stalling(body: bytes, seconds: float = 5.0) -> Handler:
    """A server that answers only after ``seconds``: past any deadline a test sets."""

    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(seconds)
        return httpx.Response(200, content=body)

    return handler


def trickling() -> Handler:
    """A server whose body never ends: one byte every 10 ms."""

    async def body() -> AsyncIterator[bytes]:
        while True:
            yield b"\x00"
            await asyncio.sleep(0.01)

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body())

    return handler


def compressed(encoding: str) -> Handler:
    """A server that sends a streamed body under ``Content-Encoding: encoding`` (streamed, so that nothing on the
    way decodes it; it is not real gzip, and must not be decoded anyway)."""

    async def body() -> AsyncIterator[bytes]:
        yield b"\x1f\x8b" + bytes(64)

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body(), headers={"content-encoding": encoding})

    return handler
