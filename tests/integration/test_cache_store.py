"""ResultCache against real Redis: markers are extended only by their owner, and purges race puts without loss."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import cast

from redis.asyncio import Redis

from service import keys
from service.cache.store import Hit, Lead, ResultCache
from service.domain.cachekeys import cache_key
from service.domain.endpoints import TEXT_TO_VIDEO
from service.domain.schemas import TextToVideoInput, validate_input
from tests.support.redis_cluster import MODES

REDIS_MODES = MODES
SCOPE = "tenant:acme"
TTL = 3600
MARKER_TTL = 60
MARKERS = 100
WRITERS = 40
PURGES = 8
ROUNDS = 5


async def _open_connections(redis: Redis, count: int) -> None:
    """Open ``count`` pooled connections first, so the racers really run at once instead of in connection order."""
    await asyncio.gather(*(redis.ping() for _ in range(count)))


def _input(n: int) -> TextToVideoInput:
    return validate_input(TEXT_TO_VIDEO, {"prompt": f"a fox, take {n}", "seed": 1})


def _key(n: int, generation: int) -> str:
    """The key a request for input ``n`` gets when planned under ``generation`` (as ``CacheService.plan`` does)."""
    return cache_key(SCOPE, TEXT_TO_VIDEO.id, _input(n), generation=generation)


def test_generation_zero_keeps_todays_keys_and_every_generation_has_its_own() -> None:
    data = _input(0)
    assert cache_key(SCOPE, TEXT_TO_VIDEO.id, data, generation=0) == cache_key(SCOPE, TEXT_TO_VIDEO.id, data)
    assert len({_key(0, g) for g in range(5)}) == 5


async def test_a_marker_is_extended_only_while_it_names_the_caller(redis_client: Redis) -> None:
    cache = ResultCache(redis_client)
    assert isinstance(await cache.claim("ck", "a", only_if_cached=False, marker_ttl=5), Lead)
    await cache.extend_marker("ck", "a", 600)
    assert await redis_client.pttl(keys.cache_leader("ck")) > 5000
    await cache.release("ck", "a")
    assert isinstance(await cache.claim("ck", "b", only_if_cached=False, marker_ttl=5), Lead)
    await cache.extend_marker("ck", "a", 600)
    assert 0 < await redis_client.pttl(keys.cache_leader("ck")) <= 5000
    await cache.extend_marker("ck", "missing-is-not-created", 600)
    assert await redis_client.get(keys.cache_leader("ck")) == "b"


async def test_an_extension_racing_a_retake_never_extends_the_new_leaders_marker(redis_client: Redis) -> None:
    """The old leader "a" extends its marker while it releases it and "b" takes it over with a one-minute marker:
    "b"'s marker must keep its own minute, whatever the interleaving (a GET then PEXPIRE gives it "a"'s hour)."""
    cache = ResultCache(redis_client)
    await _open_connections(redis_client, 2 * MARKERS)

    async def hand_over(ck: str) -> None:
        await cache.release(ck, "a")
        await cache.claim(ck, "b", only_if_cached=False, marker_ttl=MARKER_TTL)

    for round_ in range(ROUNDS):
        cache_keys = [f"ck{round_}-{n}" for n in range(MARKERS)]
        for ck in cache_keys:
            await cache.claim(ck, "a", only_if_cached=False, marker_ttl=MARKER_TTL)
        await asyncio.gather(
            *(step for ck in cache_keys for step in (cache.extend_marker(ck, "a", TTL), hand_over(ck))),
        )
        for ck in cache_keys:
            assert await redis_client.get(keys.cache_leader(ck)) == "b"
            assert await redis_client.pttl(keys.cache_leader(ck)) <= MARKER_TTL * 1000, f"{ck}: b got a's lifetime"


async def test_generation_starts_at_zero_and_each_purge_bumps_it(redis_client: Redis) -> None:
    cache = ResultCache(redis_client)
    assert await cache.generation(SCOPE) == 0
    assert await cache.purge_scope(SCOPE) == 0
    assert await cache.purge_scope(SCOPE) == 0
    assert await cache.generation(SCOPE) == 2
    assert await cache.generation("tenant:other") == 0


async def test_put_under_the_current_generation_is_recorded_and_purged(redis_client: Redis) -> None:
    cache = ResultCache(redis_client)
    ck = _key(0, await cache.generation(SCOPE))
    assert await cache.put(ck, SCOPE, {"result": 1}, TTL)
    assert await cache.claim(ck, "r", only_if_cached=True, marker_ttl=1) == Hit({"result": 1})
    assert await redis_client.smembers(keys.cache_scope(SCOPE)) == {ck}
    assert await cache.purge_scope(SCOPE) == 1
    assert not await redis_client.exists(keys.cache_entry(ck), keys.cache_scope(SCOPE))


async def test_a_put_planned_before_a_purge_writes_nothing(redis_client: Redis) -> None:
    cache = ResultCache(redis_client)
    ck = _key(0, 0)
    await cache.purge_scope(SCOPE)
    assert not await cache.put(ck, SCOPE, {"result": 1}, TTL, generation=0)
    assert not await cache.put(ck, SCOPE, {"result": 1}, TTL)  # the default generation is 0
    assert not await redis_client.exists(keys.cache_entry(ck), keys.cache_scope(SCOPE))
    current = _key(0, 1)
    assert await cache.put(current, SCOPE, {"result": 2}, TTL, generation=1)
    assert await redis_client.smembers(keys.cache_scope(SCOPE)) == {current}


async def test_the_scope_set_lives_at_least_as_long_as_its_longest_entry(redis_client: Redis) -> None:
    cache = ResultCache(redis_client)
    await cache.put("long", SCOPE, {}, 1000)
    await cache.put("short", SCOPE, {}, 100)
    assert 900 < await redis_client.ttl(keys.cache_scope(SCOPE)) <= 1000
    await cache.put("longer", SCOPE, {}, 5000)
    assert 4900 < await redis_client.ttl(keys.cache_scope(SCOPE)) <= 5000


async def test_purges_racing_puts_leave_no_entry_a_purge_cannot_find(redis_client: Redis) -> None:
    """Requests plan (read the generation) and put while purges run. Whatever the interleaving, once all are done:
    every entry a request would now be served is named by the scope set (so the next purge finds it), the set names
    only such entries, and after one more purge nothing put before it is served."""
    cache = ResultCache(redis_client)
    await _open_connections(redis_client, WRITERS + PURGES)

    async def request(n: int) -> None:
        generation = await cache.generation(SCOPE)
        await cache.put(_key(n, generation), SCOPE, {"n": n}, TTL, generation=generation)

    for _ in range(ROUNDS):
        tasks: list[Awaitable[object]] = [request(n) for n in range(WRITERS)]
        for p in range(PURGES):
            tasks.insert((p + 1) * WRITERS // (PURGES + 1), cache.purge_scope(SCOPE))
        await asyncio.gather(*tasks)

        current = await cache.generation(SCOPE)
        servable = {
            _key(n, current) for n in range(WRITERS) if await redis_client.exists(keys.cache_entry(_key(n, current)))
        }
        named = cast("set[str]", await redis_client.smembers(keys.cache_scope(SCOPE)))
        assert servable <= named, f"{len(servable - named)} servable entries no purge can find"
        assert named <= servable, f"the scope set names {len(named - servable)} entries that are not served"

        assert await cache.purge_scope(SCOPE) == len(servable)
        after = await cache.generation(SCOPE)
        for n in range(WRITERS):
            served = await cache.claim(_key(n, after), "probe", only_if_cached=True, marker_ttl=1)
            assert not isinstance(served, Hit), f"entry {n} survived the purge"
        assert not await redis_client.exists(keys.cache_scope(SCOPE))
