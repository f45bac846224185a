"""A real headless browser for tests: Debian's Chromium, driven over the DevTools protocol (CDP) with aiohttp.

``load_page`` starts one Chromium with a fresh profile, opens a URL, waits (bounded) until a JavaScript condition holds
on the page, reads the page's text and every request it made, and kills the browser whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.waiting import eventually

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--ignore-certificate-errors",  # the e2e rig's gateway has a throwaway CA of its own
    "--remote-debugging-port=0",  # any free port; Chromium writes it to DevToolsActivePort in the profile
)
COMMAND_TIMEOUT_SECONDS = 20.0


def chromium() -> str | None:
    """The Chromium to run; None where this box has none. In CI (``CI=true``) a missing Chromium fails the test."""
    found = shutil.which("chromium") or next(
        (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.access(p, os.X_OK)), None
    )
    if found is None and os.environ.get("CI") == "true":
        pytest.fail("CI needs Chromium for the docs page test (.ci/run installs Debian's chromium)")
    return found


@dataclass
class PageLoad:
    """What a page did until its condition held: its text, and every URL it requested with the answer's status."""

    text: str
    requested: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # URL -> Chromium's error (refused, blocked, ...)
    exceptions: list[str] = field(default_factory=list)  # uncaught JavaScript errors


class _Session:
    """One CDP connection to a page target: commands with ids, events collected as they come."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data and data["id"] in self._pending:
                self._pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)
        for future in self._pending.values():
            future.set_exception(ConnectionError("the browser closed the DevTools connection"))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        await self._ws.send_str(json.dumps({"id": command_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, COMMAND_TIMEOUT_SECONDS)
        if "error" in reply:
            raise AssertionError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def _browser(executable: str, profile: Path) -> AsyncIterator[int]:
    """Chromium running on a fresh profile; yields its DevTools port. Killed with its process group on the way out."""
    profile.mkdir(parents=True, exist_ok=True)
    log = (profile.parent / "chromium.log").open("wb")
    proc = subprocess.Popen(
        [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the renderers and helpers go with it
    )
    try:
        port_file = profile / "DevToolsActivePort"

        async def port() -> int | None:
            assert proc.poll() is None, f"Chromium exited: {(profile.parent / 'chromium.log').read_text()[-2000:]}"
            lines = port_file.read_text().splitlines() if port_file.exists() else []
            return int(lines[0]) if lines and lines[0].isdigit() else None

        yield await eventually(port, timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()


async def load_page(executable: str, url: str, *, ready: str, text: str, profile: Path, timeout: float) -> PageLoad:
    """Open ``url`` in a fresh headless Chromium; once the JavaScript expression ``ready`` is true (within
    ``timeout`` seconds), return the value of the expression ``text`` with the requests the page made."""
    async with _browser(executable, profile) as port, aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as listing:
            targets = await listing.json()
        page = next(t for t in targets if t.get("type") == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=64 * 2**20) as ws:
            session = _Session(ws)
            try:
                for domain in ("Network", "Page", "Runtime"):
                    await session.send(f"{domain}.enable")
                await session.send("Page.navigate", url=url)

                async def rendered() -> bool:
                    return bool(await session.evaluate(ready))

                await eventually(rendered, timeout=timeout, interval=0.1)
                return _page_load(str(await session.evaluate(text)), session.events)
            finally:
                await session.close()


def _page_load(text: str, events: list[dict[str, Any]]) -> PageLoad:
    load = PageLoad(text=text)
    urls: dict[str, str] = {}  # CDP request id -> URL
    for event in events:
        params = event.get("params", {})
        match event["method"]:
            case "Network.requestWillBeSent":
                urls[params["requestId"]] = params["request"]["url"]
                load.requested.append(params["request"]["url"])
            case "Network.responseReceived":
                load.statuses[params["response"]["url"]] = int(params["response"]["status"])
            case "Network.loadingFailed":
                name = urls.get(params["requestId"], params["requestId"])
                load.failed[name] = str(params.get("blockedReason") or params.get("errorText"))
            case "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                load.exceptions.append(str(details.get("exception", {}).get("description") or details.get("text")))
    return load
