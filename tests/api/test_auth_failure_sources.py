"""Failed authentications are counted per source (service/tenants/auth.py): an IPv4 address, or an IPv6 /64, one
subscriber's usual allocation, so a client cannot get a fresh budget of admin-token or key guesses by sending
each from another of its 2**64 addresses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from service.simulator.app import SimulatorState
from service.tenants.auth import failure_source
from tests.support.gateway import Gateway, fast_settings, running_gateway

LIMIT = 5


@pytest.fixture
async def proxied_gateway(redis_client: Redis, redis_url: str, sim: SimulatorState) -> AsyncIterator[Gateway]:
    settings = fast_settings(redis_url, auth_failures_per_minute=LIMIT, trusted_proxy_hops=1)
    async with running_gateway(redis_client, sim, settings) as gateway:
        yield gateway


async def test_admin_token_guesses_from_one_ipv6_slash64_are_never_limited(proxied_gateway: Gateway) -> None:
    statuses = [
        (
            await proxied_gateway.client.get(
                "/admin/tenants",
                headers={"Authorization": f"Bearer guess-{i}", "X-Forwarded-For": f"2001:4860:1234:5678::{i + 1:x}"},
            )
        ).status_code
        for i in range(LIMIT * 4)
    ]
    assert statuses == [401] * LIMIT + [429] * (LIMIT * 3), statuses


async def test_other_networks_keep_their_own_count(proxied_gateway: Gateway) -> None:
    async def guess(source: str) -> int:
        headers = {"Authorization": "Bearer wrong", "X-Forwarded-For": source}
        return (await proxied_gateway.client.get("/admin/tenants", headers=headers)).status_code

    for i in range(LIMIT):
        assert await guess(f"2001:db8:aaaa:1::{i + 1:x}") == 401
    assert await guess("2001:db8:aaaa:1::ffff") == 429, "the same /64"
    assert await guess("2001:db8:aaaa:2::1") == 401, "the next /64 is another subscriber"
    assert await guess("192.0.2.7") == 401
    assert await guess("192.0.2.8") == 401, "IPv4 addresses count one by one"


@pytest.mark.parametrize(
    ("address", "source"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("unknown", "unknown"),
    ],
)
def test_an_address_counts_as_its_source(address: str, source: str) -> None:
    assert failure_source(address) == source
