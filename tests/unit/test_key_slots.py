"""Redis Cluster: the keys of every Lua script call, and of every MULTI, hash to one slot.

Each entry mirrors one call site (the module named beside it): the KEYS it passes, built by ``service.keys`` for
ids that differ from one another, so a key builder that loses its hash tag, or a call site that mixes keys of two
ids, fails here. The last tests check that the scripts reach keys only through KEYS, which the table relies on.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
from redis.crc import key_slot

from service import keys

T, P, R, C, S, D = "tenant-a", "2026-12", "req-1", "cache-key-1", "scope-1", "delivery-1"

SCRIPT_KEYS: dict[str, list[str]] = {
    "tenants/admit.lua (admission.admit)": [
        keys.rate_window(T),
        keys.inflight(T),
        keys.budget(T, P),
        keys.reservations(T),
        keys.reservation_expiry(T),
    ],
    "tenants/confirm.lua (admission.confirm_in)": [keys.inflight(T), keys.reservation_expiry(T)],
    "tenants/count_failure.lua (auth)": [keys.auth_failures("10.0.0.1", 7)],
    "tenants/count_failure.lua (storage grants)": [keys.upload_rate(T, 7)],
    "tenants/rotate.lua (tenant store)": [keys.api_key("key-1")],
    "budgets/settle.lua (ledger.settle)": [
        keys.budget(T, P),
        keys.reservations(T),
        keys.reservation_expiry(T),
        keys.charges(T, P),
        keys.charges_index(T, P),
        keys.breakdown(T, P),
    ],
    "budgets/release.lua (ledger.release)": [keys.budget(T, P), keys.reservations(T), keys.reservation_expiry(T)],
    "cache/claim.lua": [keys.cache_entry(C), keys.cache_leader(C)],
    "cache/extend.lua": [keys.cache_leader(C)],
    "cache/release.lua": [keys.cache_leader(C)],
    "cache/record.lua": [keys.cache_scope(S), keys.cache_scope_generation(S)],
    "cache/purge_scope.lua": [keys.cache_scope(S), keys.cache_scope_generation(S)],
    "jobs/idempotency_claim.lua": [keys.idempotency(T, "ab" * 32)],
    "jobs/idempotency_release.lua": [keys.idempotency(T, "ab" * 32)],
    "jobs/job_write.lua": [keys.job(R)],
    "jobs/job_complete.lua": [keys.job(R), keys.job_outbox(R)],
    "jobs/job_reveal.lua": [keys.job(R)],
    "storage/take_upload.lua": [keys.upload_grant("grant-1")],
    "webhooks/enqueue.lua": [keys.webhook_delivery(D)],
    "webhooks/attempt.lua": [keys.webhook_delivery(D), keys.webhook_attempts(D)],
    "webhooks/secret_current.lua": [keys.webhook_secrets(T)],
    "webhooks/secret_rotate.lua": [keys.webhook_secrets(T)],
    "lease_claim.lua (tracker)": [keys.tracker_due()],
    "lease_claim.lua (webhooks)": [keys.webhook_due()],
    "lease_release.lua (tracker)": [keys.tracker_due()],
    "lease_release.lua (webhooks)": [keys.webhook_due()],
    # MULTI/EXEC transactions (``pipeline(transaction=True)``): one key each, listed so a second one is checked.
    "MULTI handover.give": [keys.run_handover(T, "cd" * 32)],
    "MULTI grants.grant_upload": [keys.upload_grant("grant-1")],
    "MULTI grants.mint_token": [keys.upload_token("ef" * 32)],
}


@pytest.mark.parametrize("call", sorted(SCRIPT_KEYS))
def test_keys_of_one_call_share_a_slot(call: str) -> None:
    slots = {key: key_slot(key.encode()) for key in SCRIPT_KEYS[call]}
    assert len(set(slots.values())) == 1, slots


def test_keys_of_different_ids_spread_over_slots() -> None:
    """The hash tag is the id, not a constant: two tenants' keys land in different slots (they may collide, but
    not all of a handful of ids)."""
    slots = {key_slot(keys.budget(f"tenant-{n}", P).encode()) for n in range(8)}
    assert len(slots) > 1


LUA_FILES = sorted(Path(str(resources.files("service"))).rglob("*.lua"))


def test_every_script_is_in_the_table() -> None:
    names = {path.name for path in LUA_FILES}
    covered = {call.split(" ")[0].rsplit("/", 1)[-1] for call in SCRIPT_KEYS if not call.startswith("MULTI")}
    assert names <= covered, names - covered


@pytest.mark.parametrize("path", LUA_FILES, ids=lambda path: path.name)
def test_scripts_reach_keys_only_through_keys(path: Path) -> None:
    """A key built inside a script (from ARGV or a prefix) would be invisible to the table above, and to Redis
    Cluster's routing: every redis.call's first argument is KEYS[n], except for PUBLISH's channel."""
    source = path.read_text()
    assert "gw:v1" not in source
    for command, first in re.findall(r"redis\.p?call\(\s*\"(\w+)\"\s*,\s*([^,)]+)", source):
        if command.upper() in {"PUBLISH", "TIME"}:
            continue
        assert first.strip().startswith("KEYS["), f"{path.name}: {command} {first}"
