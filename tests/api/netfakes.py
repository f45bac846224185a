"""Test doubles for outbound fetches (media probe, image hashing): a fake DNS table and canned HTTP handlers, so the
tests need no network and no DNS."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Coroutine, Sequence
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
