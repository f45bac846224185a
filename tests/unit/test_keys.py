"""Redis key layout: one ``gw:v1:`` namespace, ids wrapped in Redis Cluster hash tags."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
from redis.crc import key_slot

from service import keys

PREFIX = "gw:v1:"

# Builders that embed an id, with the key they must build for id "abc123".
ID_KEYS: list[tuple[Callable[[str], str], str]] = [
    (keys.tenant, "gw:v1:tenant:{abc123}"),
    (keys.api_key, "gw:v1:apikey:{abc123}"),
    (keys.job, "gw:v1:job:{abc123}"),
    (keys.sandbox_job, "gw:v1:sandboxjob:{abc123}"),
    (keys.sandbox_file, "gw:v1:sandboxfile:{abc123}"),
    (keys.tenant_keys, "gw:v1:tenant:{abc123}:keys"),
    (keys.tenant_requests, "gw:v1:tenant:{abc123}:requests"),
    (keys.rate_window, "gw:v1:tenant:{abc123}:rate"),
    (keys.inflight, "gw:v1:tenant:{abc123}:inflight"),
    (keys.reservations, "gw:v1:tenant:{abc123}:resv"),
    (keys.reservation_expiry, "gw:v1:tenant:{abc123}:resv:exp"),
    (keys.job_followers, "gw:v1:job:{abc123}:followers"),
    (keys.job_outbox, "gw:v1:job:{abc123}:outbox"),
    (keys.webhook_delivery, "gw:v1:webhook:{abc123}"),
    (keys.webhook_attempts, "gw:v1:webhook:{abc123}:attempts"),
    (keys.tenant_webhooks, "gw:v1:tenant:{abc123}:webhooks"),
    (keys.fal_webhook_seen, "gw:v1:falhook:{abc123}"),
    (keys.cache_entry, "gw:v1:cache:{abc123}"),
    (keys.cache_leader, "gw:v1:cache:{abc123}:leader"),
    (keys.cache_scope, "gw:v1:cachescope:{abc123}"),
    (keys.cache_scope_generation, "gw:v1:cachescope:{abc123}:gen"),
    (keys.webhook_secrets, "gw:v1:tenant:{abc123}:whsec"),
    (keys.upload_grant, "gw:v1:upload:{abc123}"),
    (keys.upload_token, "gw:v1:uploadtoken:{abc123}"),
]
# Builders of fixed keys.
FIXED_KEYS: list[tuple[Callable[[], str], str]] = [
    (keys.tenant_index, "gw:v1:tenants"),
    (keys.tracker_due, "gw:v1:tracker:due"),
    (keys.webhook_due, "gw:v1:webhook:due"),
    (keys.webhook_index, "gw:v1:webhooks"),
    (keys.job_events_channel, "gw:v1:events:job"),
    (keys.auth_events_channel, "gw:v1:events:auth"),
    (keys.audit_log, "gw:v1:audit"),
    (keys.budget_tenants, "gw:v1:budget:tenants"),
    (keys.reconcile_lock, "gw:v1:budget:reconcile-lock"),
    (keys.webhook_signing_key, "gw:v1:webhook:signing-key"),
    (keys.shard_count_record, "gw:v1:shards"),
]
# Builders of sharded keys (a shard count in, one key per shard out), with the one-shard key they must build.
SHARDED_KEYS: list[tuple[Callable[[int], tuple[str, ...]], str]] = [
    (keys.tracker_due_shards, "gw:v1:tracker:due"),
    (keys.webhook_due_shards, "gw:v1:webhook:due"),
    (keys.job_event_channels, "gw:v1:events:job"),
]
# Builders of per-period keys, with the key they must build for tenant "abc123" and period "m2026-11".
PERIOD_KEYS: list[tuple[Callable[[str, str], str], str]] = [
    (keys.budget, "gw:v1:tenant:{abc123}:budget:m2026-11"),
    (keys.charges, "gw:v1:tenant:{abc123}:charges:m2026-11"),
    (keys.charges_index, "gw:v1:tenant:{abc123}:charges:m2026-11:idx"),
    (keys.breakdown, "gw:v1:tenant:{abc123}:breakdown:m2026-11"),
    (keys.budget_alerts, "gw:v1:tenant:{abc123}:alerts:m2026-11"),
    (keys.idempotency, "gw:v1:tenant:{abc123}:idem:m2026-11"),  # the second part is a key digest
    (keys.run_handover, "gw:v1:tenant:{abc123}:handover:m2026-11"),  # the second part is a request digest
]
IDS = ["abc123", "t-1", "sgw_abcdefghij0123456789", "req_01HZX:9", "with space", "ümlaut"]


def hash_tag(key: str) -> str | None:
    """The part of ``key`` Redis Cluster hashes: the text between the first ``{`` and the next ``}``, if non-empty."""
    start = key.find("{")
    if start == -1:
        return None
    end = key.find("}", start + 1)
    if end in {-1, start + 1}:
        return None
    return key[start + 1 : end]


def public_builders() -> set[str]:
    return {
        name
        for name, obj in inspect.getmembers(keys, inspect.isfunction)
        if not name.startswith("_") and obj.__module__ == keys.__name__
    }


def test_every_key_builder_is_covered_by_these_tests() -> None:
    covered = (
        {f.__name__ for f, _ in ID_KEYS}
        | {f.__name__ for f, _ in FIXED_KEYS}
        | {"auth_failures", "upload_rate", "shard_index"}
        | {f.__name__ for f, _ in PERIOD_KEYS}
        | {f.__name__ for f, _ in SHARDED_KEYS}
    )

    assert public_builders() == covered


def test_the_prefix_constant() -> None:
    assert keys.PREFIX + ":" == PREFIX


@pytest.mark.parametrize(("builder", "expected"), ID_KEYS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_id_keys_have_the_exact_layout(builder: Callable[[str], str], expected: str) -> None:
    assert builder("abc123") == expected


@pytest.mark.parametrize("identifier", IDS)
@pytest.mark.parametrize(("builder", "expected"), ID_KEYS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_id_keys_are_prefixed_and_hash_tag_the_id(
    builder: Callable[[str], str], expected: str, identifier: str
) -> None:
    key = builder(identifier)

    assert key.startswith(PREFIX)
    assert "{" + identifier + "}" in key
    assert hash_tag(key) == identifier
    assert key.count("{") == 1


@pytest.mark.parametrize(("builder", "expected"), FIXED_KEYS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_fixed_keys_are_prefixed_and_untagged(builder: Callable[[], str], expected: str) -> None:
    key = builder()

    assert key == expected
    assert key.startswith(PREFIX)
    assert hash_tag(key) is None


def test_keys_for_the_same_id_differ_but_share_a_slot() -> None:
    built = [builder("abc123") for builder, _ in ID_KEYS]

    assert len(set(built)) == len(built)
    assert {hash_tag(key) for key in built} == {"abc123"}


def test_all_fixed_keys_are_distinct_from_each_other_and_from_id_keys() -> None:
    fixed = [builder() for builder, _ in FIXED_KEYS]
    with_ids = {builder(identifier) for builder, _ in ID_KEYS for identifier in IDS}

    assert len(set(fixed)) == len(fixed)
    assert not set(fixed) & with_ids


def test_different_ids_give_different_keys() -> None:
    for builder, _ in ID_KEYS:
        assert len({builder(identifier) for identifier in IDS}) == len(IDS)


@pytest.mark.parametrize(
    ("key", "tag"),
    [
        ("gw:v1:job:{abc}", "abc"),
        ("{a}{b}", "a"),
        ("gw:v1:{}:x", None),
        ("gw:v1:tracker:due", None),
        ("gw:v1:{open", None),
    ],
)
def test_hash_tag_helper_follows_redis_rules(key: str, tag: str | None) -> None:
    assert hash_tag(key) == tag


def test_auth_failure_keys_are_tagged_by_source_and_windowed() -> None:
    assert keys.auth_failures("10.0.0.1", 29_000_000) == "gw:v1:authfail:{10.0.0.1}:29000000"


def test_a_tenants_keys_share_one_cluster_slot() -> None:
    tenant_keys = [
        keys.tenant("acme"),
        keys.tenant_keys("acme"),
        keys.tenant_requests("acme"),
        keys.rate_window("acme"),
        keys.inflight("acme"),
    ]
    assert {hash_tag(k) for k in tenant_keys} == {"acme"}


@pytest.mark.parametrize(("builder", "expected"), PERIOD_KEYS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_period_keys_live_in_the_tenants_slot(builder: Callable[[str, str], str], expected: str) -> None:
    assert builder("abc123", "m2026-11") == expected
    assert hash_tag(expected) == "abc123"


def test_upload_rate_keys_carry_the_tenant_tag_and_the_minute() -> None:
    assert keys.upload_rate("abc123", 7) == "gw:v1:tenant:{abc123}:uploads:7"


@pytest.mark.parametrize(("builder", "single"), SHARDED_KEYS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_one_shard_is_the_unsharded_key(builder: Callable[[int], tuple[str, ...]], single: str) -> None:
    assert builder(1) == (single,)


@pytest.mark.parametrize("count", [2, 3, 8, 16, 256])
@pytest.mark.parametrize(("builder", "single"), SHARDED_KEYS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_shard_k_of_n_lies_in_the_kth_nth_of_the_slots(
    builder: Callable[[int], tuple[str, ...]], single: str, count: int
) -> None:
    """So that the shards spread evenly over masters that own contiguous, equal slot ranges."""
    shards = builder(count)

    assert len(set(shards)) == count
    for shard, key in enumerate(shards):
        assert key.startswith(single + ":{")
        assert hash_tag(key) is not None
        assert shard * 16384 // count <= key_slot(key.encode()) < (shard + 1) * 16384 // count


def test_shards_of_three_masters_are_spread_evenly() -> None:
    """redis-cli --cluster create gives three masters 0-5460, 5461-10922, 10923-16383."""
    ranges = [(0, 5460), (5461, 10922), (10923, 16383)]
    slots = [key_slot(key.encode()) for key in keys.tracker_due_shards(8)]
    per_master = [sum(low <= slot <= high for slot in slots) for low, high in ranges]

    assert sorted(per_master) == [2, 3, 3]


def test_a_members_shard_is_stable_and_members_spread() -> None:
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(800)]
    shards = [keys.shard_index(rid, 8) for rid in ids]

    assert shards == [keys.shard_index(rid, 8) for rid in ids]
    assert all(60 <= shards.count(shard) <= 140 for shard in range(8)), [shards.count(s) for s in range(8)]
    assert {keys.shard_index(rid, 1) for rid in ids} == {0}


@pytest.mark.parametrize("count", [0, 257])
def test_shard_counts_outside_the_range_are_refused(count: int) -> None:
    with pytest.raises(ValueError, match="shard count"):
        keys.tracker_due_shards(count)
