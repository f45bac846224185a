"""Servers on loopback that tests start for real (uvicorn threads, subprocesses): free ports and readiness waits."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Collection

import httpx
import pytest


def free_port() -> int:
    """A loopback port nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int, *, avoid: Collection[int] = ()) -> int:
    """The first of ``count`` consecutive loopback ports nothing listens on (right now), none of them in ``avoid``
    (ports already handed out to processes that have not bound them yet)."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            base = int(first.getsockname()[1])
            if any(base + offset in avoid for offset in range(count)):
                continue
            others = [socket.socket() for _ in range(count - 1)]
            try:
                for offset, sock in enumerate(others, start=1):
                    sock.bind(("127.0.0.1", base + offset))
            except OSError:
                continue
            finally:
                for sock in others:
                    sock.close()
            return base
    raise RuntimeError(f"no {count} consecutive free ports found")


def wait_ready(
    url: str, *, alive: Callable[[], bool], verify: ssl.SSLContext | bool = True, timeout: float = 20.0
) -> None:
    """Wait until ``url`` answers 200; fail the test if the server stops being ``alive`` first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            pytest.fail(f"the server exited before {url} answered")
        try:
            if httpx.get(url, verify=verify, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{url} not ready after {timeout}s")
