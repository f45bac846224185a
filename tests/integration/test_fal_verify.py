"""Verifying fal's inbound webhooks against a JWKS served in process: signatures, timestamps, caching and rotation."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from service.domain.webhooks import fal_signed_content
from service.webhooks.falverify import FalJwks, FalWebhook, WebhookRefused, replay_key
from tests.support.clocks import ManualClock

JWKS_URL = "https://rest.fal.test/.well-known/jwks.json"
NOW = 1_700_000_000
TOLERANCE = 300.0
CACHE = 3600.0
BODY = b'{"request_id":"fal-1","status":"OK","payload":{"video":{"url":"https://v.test/a.mp4"}}}'


def jwk(key: Ed25519PrivateKey, kid: str) -> dict[str, str]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": "EdDSA"}


@dataclass
class FakeFal:
    """fal's JWKS endpoint: serves ``document`` (or fails as told) and counts fetches."""

    document: Any
    fail: str | None = None  # "status", "network", "json"
    fetches: int = 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.fetches += 1
        await asyncio.sleep(0)  # let concurrent callers pile up behind this fetch
        if self.fail == "network":
            raise httpx.ConnectError("refused", request=request)
        if self.fail == "status":
            return httpx.Response(503, text="unavailable")
        if self.fail == "json":
            return httpx.Response(200, text="<html>")
        return httpx.Response(200, json=self.document)


@pytest.fixture
def fal_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def fal(fal_key: Ed25519PrivateKey) -> FakeFal:
    return FakeFal({"keys": [jwk(fal_key, "fal-1")]})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(float(NOW))


@pytest.fixture
async def jwks(fal: FakeFal, clock: ManualClock) -> AsyncIterator[FalJwks]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fal.handle)) as client:
        yield FalJwks(client, JWKS_URL, cache_seconds=CACHE, clock=clock)


def signed_headers(
    key: Ed25519PrivateKey, body: bytes = BODY, *, timestamp: int = NOW, request_id: str = "fal-1", user_id: str = "u-9"
) -> dict[str, str]:
    signature = key.sign(fal_signed_content(request_id, user_id, timestamp, body)).hex()
    return {
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": user_id,
        "X-Fal-Webhook-Timestamp": str(timestamp),
        "X-Fal-Webhook-Signature": signature,
    }


async def verify(jwks: FalJwks, headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> FalWebhook:
    return await jwks.verify(headers, body, now=now, tolerance_seconds=TOLERANCE)


async def refused(jwks: FalJwks, headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> str:
    with pytest.raises(WebhookRefused) as caught:
        await verify(jwks, headers, body, now)
    return caught.value.reason


async def test_a_genuine_delivery_is_accepted(jwks: FalJwks, fal: FakeFal, fal_key: Ed25519PrivateKey) -> None:
    headers = signed_headers(fal_key)

    webhook = await verify(jwks, headers)

    assert (webhook.request_id, webhook.user_id, webhook.timestamp) == ("fal-1", "u-9", NOW)
    assert webhook.signature.hex() == headers["X-Fal-Webhook-Signature"]
    assert fal.fetches == 1


async def test_header_names_are_case_insensitive_and_replay_keys_ignore_hex_case(
    jwks: FalJwks, fal_key: Ed25519PrivateKey
) -> None:
    headers = {name.lower(): value for name, value in signed_headers(fal_key).items()}
    upper = headers | {"x-fal-webhook-signature": headers["x-fal-webhook-signature"].upper()}

    first, second = await verify(jwks, headers), await verify(jwks, upper)

    assert replay_key(first) == replay_key(second) == hashlib.sha256(first.signature).hexdigest()


def not_signing_keys(key: Ed25519PrivateKey) -> list[Any]:
    """JWKS entries that are not Ed25519 signing keys (the last two hold ``key``, but for another use)."""
    return [
        {"kty": "RSA", "n": "x", "e": "AQAB"},
        {"kty": "OKP", "crv": "Ed25519", "x": "!"},
        {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"},
        "not a key",
        jwk(key, "encryption") | {"use": "enc"},
        jwk(key, "other-alg") | {"alg": "ES256"},
    ]


async def test_any_ed25519_signing_key_of_the_jwks_verifies(fal: FakeFal, jwks: FalJwks) -> None:
    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    fal.document = {"keys": [*not_signing_keys(keys[0]), *(jwk(key, f"k{n}") for n, key in enumerate(keys))]}

    for key in keys:
        await verify(jwks, signed_headers(key))

    assert fal.fetches == 1


@pytest.mark.parametrize(
    ("body", "overrides"),
    [
        (BODY + b" ", {}),
        (BODY, {"X-Fal-Webhook-Request-Id": "fal-2"}),
        (BODY, {"X-Fal-Webhook-User-Id": "someone-else"}),
        (BODY, {"X-Fal-Webhook-Timestamp": str(NOW + 1)}),
    ],
    ids=["body", "request-id", "user-id", "timestamp"],
)
async def test_a_tampered_delivery_is_refused(
    jwks: FalJwks, fal_key: Ed25519PrivateKey, body: bytes, overrides: dict[str, str]
) -> None:
    assert await refused(jwks, signed_headers(fal_key) | overrides, body) == "bad_signature"


async def test_a_foreign_key_is_refused_and_refetches_at_most_once_a_minute(
    jwks: FalJwks, fal: FakeFal, fal_key: Ed25519PrivateKey, clock: ManualClock
) -> None:
    stranger = Ed25519PrivateKey.generate()
    await verify(jwks, signed_headers(fal_key))

    assert await refused(jwks, signed_headers(stranger)) == "bad_signature"
    assert fal.fetches == 1  # fetched just now: no refetch
    clock.advance(61)
    forged = signed_headers(stranger, timestamp=NOW + 61)
    assert await refused(jwks, forged, now=NOW + 61) == "bad_signature"
    assert await refused(jwks, forged, now=NOW + 61) == "bad_signature"
    assert fal.fetches == 2


async def test_a_key_fal_rotated_in_is_found_by_one_refetch(
    jwks: FalJwks, fal: FakeFal, fal_key: Ed25519PrivateKey, clock: ManualClock
) -> None:
    await verify(jwks, signed_headers(fal_key))
    rotated = Ed25519PrivateKey.generate()
    fal.document = {"keys": [jwk(rotated, "fal-2")]}
    clock.advance(120)

    await verify(jwks, signed_headers(rotated, timestamp=NOW + 120), now=NOW + 120)
    await verify(jwks, signed_headers(rotated, timestamp=NOW + 121), now=NOW + 121)

    assert fal.fetches == 2  # one refetch found the new key, which is cached from then on


async def test_the_jwks_is_cached_for_at_most_cache_seconds(
    jwks: FalJwks, fal: FakeFal, fal_key: Ed25519PrivateKey, clock: ManualClock
) -> None:
    await verify(jwks, signed_headers(fal_key))
    clock.advance(CACHE - 1)
    await verify(jwks, signed_headers(fal_key))
    assert fal.fetches == 1

    clock.advance(1)
    await verify(jwks, signed_headers(fal_key))

    assert fal.fetches == 2


@pytest.mark.parametrize("offset", [-300, 300, -301, 301, -10_000])
async def test_a_timestamp_beyond_the_tolerance_either_way_is_stale(
    jwks: FalJwks, fal: FakeFal, fal_key: Ed25519PrivateKey, offset: int
) -> None:
    headers = signed_headers(fal_key, timestamp=NOW + offset)

    if abs(offset) <= TOLERANCE:
        await verify(jwks, headers)
    else:
        assert await refused(jwks, headers) == "stale"
        assert fal.fetches == 0  # refused before any key is needed


@pytest.mark.parametrize(
    "name",
    ["X-Fal-Webhook-Request-Id", "X-Fal-Webhook-User-Id", "X-Fal-Webhook-Timestamp", "X-Fal-Webhook-Signature"],
)
@pytest.mark.parametrize("blank", [False, True], ids=["absent", "empty"])
async def test_a_missing_header_is_refused(jwks: FalJwks, fal_key: Ed25519PrivateKey, name: str, blank: bool) -> None:
    headers = {
        key: "" if key == name else value for key, value in signed_headers(fal_key).items() if blank or key != name
    }

    assert await refused(jwks, headers) == "missing_headers"


@pytest.mark.parametrize("value", ["soon", "-5", "1700000000.5", "1e9", "\uff11\uff17\uff10\uff10"])  # fullwidth
async def test_a_malformed_timestamp_is_refused(jwks: FalJwks, fal_key: Ed25519PrivateKey, value: str) -> None:
    headers = signed_headers(fal_key) | {"X-Fal-Webhook-Timestamp": value}

    assert await refused(jwks, headers) == "bad_timestamp"


@pytest.mark.parametrize("signature", ["zz" * 64, "ab" * 63, "ab" * 65, "0x" + "ab" * 63, "ab" * 32])
async def test_a_malformed_signature_is_refused(jwks: FalJwks, fal_key: Ed25519PrivateKey, signature: str) -> None:
    headers = signed_headers(fal_key) | {"X-Fal-Webhook-Signature": signature}

    assert await refused(jwks, headers) == "bad_signature"


@pytest.mark.parametrize(
    ("fail", "document"),
    [
        ("network", None),
        ("status", None),
        ("json", None),
        (None, {"keys": []}),
        (None, {"keys": not_signing_keys(Ed25519PrivateKey.generate())}),
        (None, ["not", "a", "jwks"]),
    ],
    ids=["network", "status", "not-json", "no-keys", "no-ed25519-signing-key", "not-a-jwks"],
)
async def test_an_unavailable_jwks_refuses_and_recovers(
    jwks: FalJwks, fal: FakeFal, fal_key: Ed25519PrivateKey, fail: str | None, document: Any
) -> None:
    served = fal.document
    fal.fail, fal.document = fail, document if document is not None else served

    assert await refused(jwks, signed_headers(fal_key)) == "jwks_unavailable"

    fal.fail, fal.document = None, served
    await verify(jwks, signed_headers(fal_key))


async def test_expired_keys_are_not_used_when_the_refetch_fails(
    jwks: FalJwks, fal: FakeFal, fal_key: Ed25519PrivateKey, clock: ManualClock
) -> None:
    await verify(jwks, signed_headers(fal_key))
    clock.advance(CACHE)
    fal.fail = "status"

    later = NOW + int(CACHE)
    assert await refused(jwks, signed_headers(fal_key, timestamp=later), now=later) == "jwks_unavailable"


async def test_a_failed_refetch_for_an_unknown_key_keeps_the_cached_keys(
    jwks: FalJwks, fal: FakeFal, fal_key: Ed25519PrivateKey, clock: ManualClock
) -> None:
    await verify(jwks, signed_headers(fal_key))
    clock.advance(61)
    fal.fail, later, stranger = "network", NOW + 61, Ed25519PrivateKey.generate()

    assert await refused(jwks, signed_headers(stranger, timestamp=later), now=later) == "bad_signature"
    await verify(jwks, signed_headers(fal_key, timestamp=later), now=later)
    assert fal.fetches == 2


@pytest.mark.parametrize("fail", [None, "network"])
async def test_concurrent_deliveries_share_one_fetch(
    jwks: FalJwks, fal: FakeFal, fal_key: Ed25519PrivateKey, fail: str | None
) -> None:
    fal.fail = fail

    results = await asyncio.gather(*(verify(jwks, signed_headers(fal_key)) for _ in range(20)), return_exceptions=True)

    assert fal.fetches == 1
    if fail is None:
        assert all(isinstance(result, FalWebhook) for result in results)
    else:
        assert all(isinstance(result, WebhookRefused) and result.reason == "jwks_unavailable" for result in results)
