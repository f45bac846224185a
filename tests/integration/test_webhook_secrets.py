"""Webhook secrets on real Redis: the signing key replicas share, and tenant secrets under concurrent rotation."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import cast

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service import keys
from service.domain.webhooks import standard_signatures
from service.webhooks.secrets import TenantSecrets
from service.webhooks.signing import SigningKeys, generate_signing_key, parse_signing_keys
from tests.support.clocks import ManualClock
from tests.support.redis_cluster import MODES, connect_any

REDIS_MODES = MODES
GRACE = 3600.0


@pytest.fixture
async def second_client(redis_client: Redis, redis_url: str) -> AsyncIterator[Redis]:
    """Another replica's connection pool to the same (flushed) database."""
    client = connect_any(redis_url, max_connections=50, timeout=5.0)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
def tenant_secrets(redis_client: Redis, clock: ManualClock) -> TenantSecrets:
    return TenantSecrets(redis_client, grace_seconds=GRACE, clock=clock)


# The gateway's signing key


async def test_replicas_without_configured_keys_converge_on_one_generated_key(
    redis_client: Redis, second_client: Redis
) -> None:
    replicas = [SigningKeys(redis_client, None), SigningKeys(second_client, None)]
    replicas += [SigningKeys(redis_client if n % 2 else second_client, None) for n in range(8)]

    await asyncio.gather(*(replica.ready() for replica in replicas))

    entry = cast("str | None", await redis_client.get(keys.webhook_signing_key()))
    assert entry is not None
    assert {replica.signer.kid for replica in replicas} == {parse_signing_keys(entry)[0].kid}
    assert all(replica.jwks() == replicas[0].jwks() for replica in replicas)
    assert len(replicas[0].jwks()["keys"]) == 1
    assert replicas[0].sign(b"x") == replicas[1].sign(b"x")


async def test_a_replica_started_later_reads_the_stored_key(redis_client: Redis) -> None:
    entry = generate_signing_key()
    await redis_client.set(keys.webhook_signing_key(), entry)
    replica = SigningKeys(redis_client, None)

    await replica.ready()

    assert replica.signer.kid == entry.partition(":")[0]
    assert await redis_client.get(keys.webhook_signing_key()) == entry


async def test_a_malformed_shared_key_is_reported_without_its_content(redis_client: Redis) -> None:
    await redis_client.set(keys.webhook_signing_key(), "k1:c2VjcmV0LXNlZWQ")

    with pytest.raises(ValueError, match="shared signing key in Redis") as caught:
        await SigningKeys(redis_client, None).ready()

    assert "c2VjcmV0LXNlZWQ" not in str(caught.value)


async def test_configured_keys_are_used_and_nothing_is_stored(redis_client: Redis) -> None:
    entry = generate_signing_key()
    replica = SigningKeys(redis_client, SecretStr(f"{entry},{generate_signing_key()}"))

    await replica.ready()

    assert replica.signer.kid == entry.partition(":")[0]
    assert len(replica.jwks()["keys"]) == 2
    assert await redis_client.exists(keys.webhook_signing_key()) == 0


# Tenant secrets


def assert_is_secret(secret: str) -> None:
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32


async def stored(redis: Redis, tenant_id: str) -> dict[str, str]:
    return cast("dict[str, str]", await redis.hgetall(keys.webhook_secrets(tenant_id)))


async def test_the_first_use_creates_a_current_secret_that_stays(
    tenant_secrets: TenantSecrets, redis_client: Redis
) -> None:
    first = await tenant_secrets.signing_secrets("acme")

    assert len(first) == 1
    assert_is_secret(first[0])
    assert await tenant_secrets.signing_secrets("acme") == first
    assert await stored(redis_client, "acme") == {"current": first[0]}


async def test_thirty_concurrent_first_uses_create_one_secret(
    redis_client: Redis, second_client: Redis, clock: ManualClock
) -> None:
    replicas = [TenantSecrets(client, grace_seconds=GRACE, clock=clock) for client in (redis_client, second_client)]

    answers = await asyncio.gather(*(replicas[n % 2].signing_secrets("acme") for n in range(30)))

    assert len({tuple(answer) for answer in answers}) == 1
    assert await stored(redis_client, "acme") == {"current": answers[0][0]}


async def test_a_rotation_signs_with_both_until_the_grace_ends(
    tenant_secrets: TenantSecrets, redis_client: Redis, clock: ManualClock
) -> None:
    [old] = await tenant_secrets.signing_secrets("acme")

    new = await tenant_secrets.rotate("acme")

    assert_is_secret(new)
    assert new != old
    assert await tenant_secrets.signing_secrets("acme") == [new, old]
    clock.advance(GRACE - 1)
    assert await tenant_secrets.signing_secrets("acme") == [new, old]
    clock.advance(1)
    assert await tenant_secrets.signing_secrets("acme") == [new]
    assert await stored(redis_client, "acme") == {"current": new}


async def test_a_first_rotation_has_no_previous_secret(tenant_secrets: TenantSecrets) -> None:
    new = await tenant_secrets.rotate("acme")

    assert await tenant_secrets.signing_secrets("acme") == [new]


async def test_a_second_rotation_retires_the_oldest_secret_at_once(tenant_secrets: TenantSecrets) -> None:
    first = await tenant_secrets.rotate("acme")
    second = await tenant_secrets.rotate("acme")

    third = await tenant_secrets.rotate("acme")

    assert first not in await tenant_secrets.signing_secrets("acme")
    assert await tenant_secrets.signing_secrets("acme") == [third, second]


async def test_without_grace_the_old_secret_stops_signing_at_once(redis_client: Redis, clock: ManualClock) -> None:
    tenant_secrets = TenantSecrets(redis_client, grace_seconds=0, clock=clock)
    await tenant_secrets.rotate("acme")

    new = await tenant_secrets.rotate("acme")

    assert await tenant_secrets.signing_secrets("acme") == [new]


async def test_thirty_concurrent_rotations_leave_a_consistent_pair(
    redis_client: Redis, second_client: Redis, clock: ManualClock
) -> None:
    replicas = [TenantSecrets(client, grace_seconds=GRACE, clock=clock) for client in (redis_client, second_client)]
    [initial] = await replicas[0].signing_secrets("acme")

    returned = await asyncio.gather(*(replicas[n % 2].rotate("acme") for n in range(30)))

    assert len(set(returned)) == 30
    state = await stored(redis_client, "acme")
    assert set(state) == {"current", "previous", "previous_until"}
    assert state["current"] in returned
    assert state["previous"] in returned
    assert state["previous"] != state["current"]
    assert float(state["previous_until"]) == replicas[0].now() + GRACE == clock() + GRACE
    assert initial != state["previous"]
    assert await replicas[1].signing_secrets("acme") == [state["current"], state["previous"]]
    # the chain is intact: the next rotation retires exactly the current secret
    latest = await replicas[0].rotate("acme")
    assert await replicas[0].signing_secrets("acme") == [latest, state["current"]]


async def test_rotations_racing_first_uses_never_lose_a_rotated_secret(
    redis_client: Redis, second_client: Redis, clock: ManualClock
) -> None:
    replicas = [TenantSecrets(client, grace_seconds=GRACE, clock=clock) for client in (redis_client, second_client)]

    results = await asyncio.gather(
        *(replicas[n % 2].rotate("acme") if n % 3 == 0 else replicas[n % 2].signing_secrets("acme") for n in range(30))
    )

    rotated = {result for result in results if isinstance(result, str)}
    answers = [result for result in results if isinstance(result, list)]
    final = await replicas[0].signing_secrets("acme")
    assert final[0] in rotated
    assert all(1 <= len(answer) <= 2 for answer in answers)
    seen = {secret for answer in answers for secret in answer}
    assert len(seen - rotated) <= 1  # at most one lazily created secret, whatever the interleaving


async def test_tenants_are_independent_and_drop_forgets_one(tenant_secrets: TenantSecrets, redis_client: Redis) -> None:
    acme = await tenant_secrets.rotate("acme")
    [other] = await tenant_secrets.signing_secrets("other")

    await tenant_secrets.drop("acme")

    assert await redis_client.exists(keys.webhook_secrets("acme")) == 0
    assert await tenant_secrets.signing_secrets("other") == [other]
    [recreated] = await tenant_secrets.signing_secrets("acme")
    assert recreated not in {acme, other}


async def test_during_the_grace_a_receiver_with_either_secret_verifies(
    tenant_secrets: TenantSecrets, clock: ManualClock
) -> None:
    [old] = await tenant_secrets.signing_secrets("acme")
    new = await tenant_secrets.rotate("acme")
    body, now = b'{"status":"OK"}', int(time.time())

    header = standard_signatures(await tenant_secrets.signing_secrets("acme"), "msg_1", now, body)

    for receiver in (old, new):
        Webhook(receiver).verify(
            body, {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": header}
        )
    clock.advance(GRACE)
    header = standard_signatures(await tenant_secrets.signing_secrets("acme"), "msg_1", now, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": header})
