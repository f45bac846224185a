"""Redis going down while the gateway runs: paid work is refused with 503 and nothing is sent upstream.

A loopback TCP proxy sits between the app and the real Redis; cutting it is a Redis outage as the app sees it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from service.app import create_app
from service.redis_client import connect_url
from tests.support.admin import key_auth, tenant_key
from tests.support.endpoints import T2V
from tests.support.gateway import fast_settings, fast_simulator, serve_in_process, simulator_transport
from tests.support.redis import via


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, upstream_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[CuttableProxy]:
    parts = urlsplit(redis_url)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 6379)  # the redis:// scheme's default
    await proxy.start()
    yield proxy
    await proxy.cut()


async def test_a_redis_outage_mid_run_refuses_paid_work_with_503_and_sends_nothing(
    proxy: CuttableProxy, redis_url: str, redis_client: object
) -> None:
    proxied = via(redis_url, proxy.port)
    redis = connect_url(proxied, max_connections=20, timeout=0.5)
    sim = fast_simulator()
    settings = fast_settings(proxied, redis_socket_timeout_seconds=0.5)
    app = create_app(settings, redis=redis, upstream_transport=simulator_transport(sim))
    async with serve_in_process(app) as client:
        headers = key_auth(await tenant_key(client, budget={"limit_micros": 10**9}))
        assert (await client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).status_code == 200
        submits_before = sim.stats()["calls"]["submit"]

        await proxy.cut()
        for _ in range(3):
            refused = await client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)
            assert refused.status_code == 503
            assert refused.json()["error_type"] == "state_store_unavailable"
            assert "nothing was sent upstream" in refused.json()["detail"]
        assert (await client.get("/readyz")).status_code == 503
        assert sim.stats()["calls"]["submit"] == submits_before
    await redis.aclose()
