"""Bounded condition waits: return as soon as a condition holds, fail the test when it does not in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


async def eventually(probe: Callable[[], Awaitable[Any]], *, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Re-run ``probe`` until it returns something truthy, and return that; fail after ``timeout`` seconds. A bounded
    condition wait, not a fixed sleep: it returns as soon as the condition holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def eventually_sync(probe: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """``eventually`` for tests outside an event loop (real processes driven by a blocking client)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
