"""Which Redis the suite uses: the one ``GATEWAY_TEST_REDIS_URL`` names, else an embedded server it starts itself."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis

from service.embedded import EmbeddedRedis

URL_VARIABLE = "GATEWAY_TEST_REDIS_URL"


@dataclass(frozen=True)
class SuiteRedis:
    """The suite's Redis: its URL, and the embedded server when the suite started it (None: it was named)."""

    url: str
    embedded: EmbeddedRedis | None


@contextmanager
def suite_redis(
    environ: Mapping[str, str] = os.environ, start: Callable[[], EmbeddedRedis] = EmbeddedRedis
) -> Iterator[SuiteRedis]:
    """The named server, or a fresh embedded one, stopped on exit. There is no probing of well-known ports."""
    named = environ.get(URL_VARIABLE)
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
