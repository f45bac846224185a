"""Redis restarting, resetting or loading under a gateway: dead pooled connections healed, lost replies not re-sent."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit

import httpx
import pytest
import structlog
from redis.asyncio import Redis
from redis.exceptions import BusyLoadingError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError

from service.embedded import EmbeddedRedis
from service.errors import to_gateway_error
from service.logging import configure_logging
from service.redis_client import connect_url
from tests.support.gateway import Gateway, fast_settings, fast_simulator, local, running_gateway
from tests.support.redis import private_redis, via
from tests.support.waiting import eventually

BURST = 80
OUTAGE_BOUND_SECONDS = 2.0
PERSISTENT = {"save": "3600 1"}  # SIGTERM saves the dataset and the restart loads it, as on a persistent Redis
# DEBUG RELOAD saves and loads the dataset again; 400 us per key keeps 5000 keys LOADING for 2 s at least.
SLOW_LOADING = {"enable-debug-command": "yes", "key-load-delay": "400", "loading-process-events-interval-bytes": "1024"}
LOADED_KEYS = 5000


def client(url: str) -> Redis:
    """The gateway's client, from the one factory, on a test's own server (``private_redis``): these tests stop,
    restart and reload it."""
    return connect_url(url, max_connections=200, timeout=2.0)


@pytest.fixture
def production_logging() -> Iterator[None]:
    """The gateway's own logging set-up (JSON lines, as ``serve`` runs), for the tests through the gateway: structlog's
    default renders each traceback its background loops log while Redis is away with rich, blocking the event loop
    for up to a second each."""
    saved = structlog.get_config()
    configure_logging(fast_settings("redis://127.0.0.1/0"))  # only its log settings are read
    yield
    structlog.configure(**saved)


@pytest.fixture
def restartable() -> Iterator[tuple[EmbeddedRedis, str]]:
    with private_redis(PERSISTENT) as server:
        yield server


@pytest.fixture
async def redis(restartable: tuple[EmbeddedRedis, str]) -> AsyncIterator[Redis]:
    redis = client(restartable[1])
    yield redis
    await redis.aclose()


async def restart(server: EmbeddedRedis) -> None:
    """Stop and start the server on its port while the event loop runs on, as Redis restarts under a gateway."""
    await asyncio.to_thread(server.restart)


async def errors_of_a_burst(call: Callable[[], Awaitable[object]]) -> list[BaseException]:
    """``BURST`` calls at once (a pooled connection each); the errors they raised."""
    results = await asyncio.gather(*(call() for _ in range(BURST)), return_exceptions=True)
    return [result for result in results if isinstance(result, BaseException)]


async def answers(redis: Redis) -> bool:
    try:
        return bool(await redis.ping())
    except RedisError:
        return False


@dataclass(frozen=True)
class StatusCalls:
    """Status calls on one job through the in-process gateway."""

    gateway: Gateway
    url: str
    headers: dict[str, str]

    async def one(self) -> httpx.Response:
        return await self.gateway.client.get(self.url, headers=self.headers)

    async def burst(self) -> Counter[int]:
        """``BURST`` calls at once; how many got each status code."""
        return Counter(response.status_code for response in await asyncio.gather(*(self.one() for _ in range(BURST))))


@contextlib.asynccontextmanager
async def gateway_on(redis: Redis, url: str) -> AsyncIterator[StatusCalls]:
    """The in-process gateway on ``redis``, with a job run to completion, and the status calls on it."""
    async with running_gateway(redis, fast_simulator(), fast_settings(url)) as gateway:
        submitted = await gateway.submit()
        assert submitted.status_code == 200, submitted.text
        status_url = local(submitted.json()["status_url"])
        await gateway.wait_status(status_url)  # COMPLETED: every status call answers 200 from here on
        yield StatusCalls(gateway, status_url, await gateway.auth())


async def ready(gateway: Gateway) -> bool:
    return (await gateway.client.get("/readyz")).status_code == 200


# --- a restart: the server closed every pooled connection -----------------------------------------------------------


async def test_after_a_restart_a_burst_on_the_old_pooled_connections_gets_no_error(
    restartable: tuple[EmbeddedRedis, str], redis: Redis
) -> None:
    await redis.set("k", "v")
    assert await errors_of_a_burst(lambda: redis.get("k")) == []
    assert len(await redis.client_list()) >= BURST, "the pool holds a connection for each call of the burst"

    await restart(restartable[0])
    await eventually(lambda: answers(redis), timeout=5)
    assert await errors_of_a_burst(lambda: redis.get("k")) == []
    assert await redis.get("k") == "v"


@pytest.mark.usefixtures("production_logging")
async def test_after_a_restart_a_burst_of_status_calls_through_the_gateway_all_answer(
    restartable: tuple[EmbeddedRedis, str], redis: Redis
) -> None:
    async with gateway_on(redis, restartable[1]) as status:
        assert await status.burst() == {200: BURST}

        await restart(restartable[0])
        await eventually(lambda: ready(status.gateway), timeout=5)
        assert await status.burst() == {200: BURST}


# --- a real outage: still a quick 503 ------------------------------------------------------------------------------


@pytest.mark.usefixtures("production_logging")
async def test_a_real_outage_still_fails_within_the_bound_and_answers_503(
    restartable: tuple[EmbeddedRedis, str], redis: Redis
) -> None:
    server, url = restartable
    async with gateway_on(redis, url) as status:
        assert await status.burst() == {200: BURST}
        await asyncio.to_thread(server.stop)

        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RedisConnectionError):
            await redis.get("k")
        refused, burst = await status.one(), await status.burst()
        not_ready = await status.gateway.client.get("/readyz")
        assert loop.time() - started < OUTAGE_BOUND_SECONDS
        assert (refused.status_code, refused.json()["error_type"]) == (503, "state_store_unavailable")
        assert burst == {503: BURST}
        assert not_ready.status_code == 503

        await asyncio.to_thread(server.start)
        await eventually(lambda: ready(status.gateway), timeout=5)
        assert await status.burst() == {200: BURST}


# --- Redis loading its dataset: not ready, 503 -----------------------------------------------------------------------


def test_busy_loading_is_the_state_store_being_unavailable() -> None:
    error = to_gateway_error(BusyLoadingError("Redis is loading the dataset in memory"))
    assert (error.status_code, error.error_type) == (503, "state_store_unavailable")


async def reload_dataset(url: str) -> None:
    """DEBUG RELOAD, on a client of its own without a socket timeout: it answers once the dataset is loaded again."""
    async with Redis.from_url(url) as reloader:
        await reloader.execute_command("DEBUG", "RELOAD")  # type: ignore[no-untyped-call]  # no typed method


async def loading_error(redis: Redis) -> BusyLoadingError | None:
    try:
        await redis.ping()
    except BusyLoadingError as exc:
        return exc
    return None


@pytest.mark.usefixtures("production_logging")
async def test_while_redis_loads_its_dataset_readyz_is_not_ready_and_requests_answer_503() -> None:
    with private_redis(SLOW_LOADING) as (_, url):
        async with client(url) as redis, gateway_on(redis, url) as status:
            await redis.mset({f"filler:{n}": "x" for n in range(LOADED_KEYS)})
            assert await status.burst() == {200: BURST}

            reload = asyncio.create_task(reload_dataset(url))
            await eventually(lambda: loading_error(redis), timeout=5)
            not_ready = await status.gateway.client.get("/readyz")
            refused, burst = await status.one(), await status.burst()
            assert not reload.done(), "the server was loading all along"
            await reload

            assert not_ready.status_code == 503
            assert (not_ready.json()["ok"], not_ready.json()["failing"]) == ([], {"redis": "BusyLoadingError"})
            assert (refused.status_code, refused.json()["error_type"]) == (503, "state_store_unavailable")
            assert burst == {503: BURST}
            await eventually(lambda: ready(status.gateway), timeout=5)
            assert await status.burst() == {200: BURST}


# --- connections reset under the client, and replies lost: what is sent again and what is not -----------------------


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST, as the kernel of a peer whose process died with unread data does."""
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultyLink:
    """A loopback TCP proxy in front of Redis that resets the connections it carries, or loses the next reply."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._clients: set[asyncio.StreamWriter] = set()
        self._lose_next_reply = False
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._carry, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self.reset_all()

    def lose_next_reply(self) -> None:
        """The next reply is dropped and its connection reset: the server ran the command, the client never hears."""
        self._lose_next_reply = True

    async def reset_all(self) -> None:
        """Reset every carried connection at the client's end (the RSTs are sent on return); new ones are carried."""
        clients, self._clients = list(self._clients), set()
        for writer in clients:
            reset(writer)
        for writer in clients:
            await writer.wait_closed()

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._clients.add(writer)

        async def requests() -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    upstream_writer.write(data)
                    await upstream_writer.drain()
            upstream_writer.close()

        async def replies() -> None:
            with contextlib.suppress(OSError):
                while data := await upstream_reader.read(65536):
                    if self._lose_next_reply:
                        self._lose_next_reply = False
                        self._clients.discard(writer)
                        reset(writer)
                        return
                    writer.write(data)
                    await writer.drain()

        await asyncio.gather(requests(), replies())


@pytest.fixture
async def link() -> AsyncIterator[tuple[FaultyLink, str]]:
    with private_redis() as (_, url):
        async with FaultyLink(urlsplit(url).port or 0) as link:
            yield link, url


async def test_connections_reset_under_the_pool_are_replaced_and_the_burst_gets_no_error(
    link: tuple[FaultyLink, str],
) -> None:
    faulty, url = link
    async with client(via(url, faulty.port)) as redis:
        assert await errors_of_a_burst(lambda: redis.get("k")) == []

        await faulty.reset_all()
        assert await errors_of_a_burst(lambda: redis.get("k")) == []


async def test_a_script_whose_reply_was_lost_is_not_run_again(link: tuple[FaultyLink, str]) -> None:
    faulty, url = link
    async with client(via(url, faulty.port)) as redis, client(url) as direct:
        count_run = redis.register_script("return redis.call('INCR', KEYS[1])")
        assert await count_run(keys=["runs"]) == 1  # the script is loaded and its connection pooled

        faulty.lose_next_reply()
        with pytest.raises(RedisConnectionError):
            await count_run(keys=["runs"])
        assert await direct.get("runs") == "2", "the script ran once more: it was not sent again"
        assert await count_run(keys=["runs"]) == 3  # and the reset connection is replaced before the next one
