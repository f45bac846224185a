"""Without GATEWAY_TEST_REDIS_URL the suite runs on an embedded server it started, never on a Redis on 6379."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
import redis

from service.embedded import EmbeddedRedis
from tests.support.redis import URL_VARIABLE, WORKER_VARIABLE, SuiteRedis, suite_redis, told_url, via

WELL_KNOWN_PORT = 6379


def _server_name(url: str) -> str:
    with redis.Redis.from_url(url, socket_connect_timeout=2) as client:
        return str(client.info("server").get("server_name", "redis"))


def test_without_the_variable_the_suite_starts_and_uses_its_own_server() -> None:
    with suite_redis(environ={}) as server:
        assert server.embedded is not None
        assert urlsplit(server.url).port != WELL_KNOWN_PORT
        assert _server_name(server.url) == "valkey", "the embedded valkey server answers, not another Redis"
    with pytest.raises(redis.ConnectionError), redis.Redis.from_url(server.url, socket_connect_timeout=1) as client:
        client.ping()  # and it is stopped afterwards


def test_the_variable_names_the_server_and_nothing_is_started() -> None:
    def refuse() -> EmbeddedRedis:
        pytest.fail("an embedded server was started although a URL was given")

    with suite_redis(environ={URL_VARIABLE: "redis://db.example:6380/7"}, start=refuse) as server:
        assert server == SuiteRedis("redis://db.example:6380/7", None)


def test_the_sessions_server_is_the_named_one_or_the_embedded_one(redis_server: SuiteRedis, redis_url: str) -> None:
    named = told_url(os.environ)
    if named:
        assert (redis_url, redis_server.embedded) == (named, None)
    else:
        assert redis_server.embedded is not None
        assert urlsplit(redis_url).port != WELL_KNOWN_PORT, "a laptop's Redis on 6379 is never flushed"
        assert _server_name(redis_url) == "valkey"


LIST = "redis://127.0.0.1:6379/13, redis://127.0.0.1:6379/14,redis://127.0.0.1:6379/15"


@pytest.mark.parametrize(
    ("worker", "expected"),
    [
        (None, "redis://127.0.0.1:6379/13"),  # no workers: the first
        ("gw0", "redis://127.0.0.1:6379/13"),
        ("gw1", "redis://127.0.0.1:6379/14"),
        ("gw2", "redis://127.0.0.1:6379/15"),
        ("gw3", None),  # the list has none for it: it starts its own
    ],
)
def test_each_worker_takes_its_own_database_of_the_list(worker: str | None, expected: str | None) -> None:
    environ = {URL_VARIABLE: LIST} | ({WORKER_VARIABLE: worker} if worker else {})
    assert told_url(environ) == expected


def test_a_worker_the_list_has_none_for_starts_its_own_server() -> None:
    with suite_redis(environ={URL_VARIABLE: "redis://db.example:6380/7", WORKER_VARIABLE: "gw1"}) as server:
        assert server.embedded is not None
        assert _server_name(server.url) == "valkey"


def test_a_database_named_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        told_url({URL_VARIABLE: "redis://127.0.0.1:6379/13,redis://127.0.0.1:6379/13", WORKER_VARIABLE: "gw1"})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/15", "redis://127.0.0.1:7000/15"),
        ("redis://:secret@db.internal/3?protocol=3", "redis://:secret@127.0.0.1:7000/3?protocol=3"),
        ("rediss://user:pw@db:6380", "rediss://user:pw@127.0.0.1:7000"),
    ],
)
def test_a_url_can_be_pointed_at_a_proxy(url: str, expected: str) -> None:
    assert via(url, 7000) == expected
