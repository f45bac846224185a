"""The two webhook signatures: the gateway's Ed25519 keys (parse, generate, sign, JWKS) and Standard Webhooks HMACs."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import cast

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import SecretStr
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service.domain.webhooks import fal_signed_content, new_secret, standard_signature, standard_signatures
from service.webhooks.signing import SigningKeys, b64url, generate_signing_key, parse_signing_keys

# RFC 8032 §7.1, test 1: the seed, its public key, and the signature of the empty message.
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIGNATURE = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655"
    "141438e7a100b"
)
SEED_A = base64.urlsafe_b64encode(RFC_SEED).decode()  # padded, as some tools print it
SEED_B = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")


class NoRedis:
    """Configured keys never touch Redis; any use fails the test."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"Redis was used: {name}")


def configured(text: str) -> SigningKeys:
    return SigningKeys(cast("Redis", NoRedis()), SecretStr(text))


def public_key_from_jwk(jwk: dict[str, str]) -> Ed25519PublicKey:
    """Decoded independently of the code under test: plain base64url with the padding put back."""
    x = jwk["x"]
    return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))


def test_parse_reads_every_entry_in_order_padding_optional() -> None:
    parsed = parse_signing_keys(f" k1:{SEED_A} , k-2.b_:{SEED_B},")

    assert [key.kid for key in parsed] == ["k1", "k-2.b_"]
    assert parsed[0].public_bytes() == RFC_PUBLIC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "names no key"),
        (" , ", "names no key"),
        (f"{SEED_B}", "entry 1 is not <kid>:<base64url seed>"),
        (f"k1:{SEED_A},{SEED_B}", "entry 2 is not <kid>:<base64url seed>"),
        (f":{SEED_B}", "entry 1: the key id"),
        (f"bad kid:{SEED_B}", "entry 1: the key id"),
        (f"k1:{SEED_B}!", "entry 1 (kid 'k1'): the seed is not base64url"),
        (f"k1:{SEED_B[:-4]}", "entry 1 (kid 'k1'): the seed must decode to 32 bytes, not 29"),
        ("k1:", "entry 1 (kid 'k1'): the seed is not base64url"),
        (f"k1:{SEED_A},k1:{SEED_B}", "repeats the key id 'k1'"),
    ],
)
def test_parse_refuses_a_bad_entry_by_name_without_echoing_seeds(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="GATEWAY_WEBHOOK_SIGNING_KEYS") as caught:
        parse_signing_keys(text)

    assert message in str(caught.value)
    for seed in (SEED_A, SEED_B, SEED_B[:-4], SEED_B[:8]):
        assert seed not in str(caught.value)


def test_generated_entries_parse_and_are_all_different() -> None:
    entries = [generate_signing_key() for _ in range(20)]
    parsed = [parse_signing_keys(entry)[0] for entry in entries]

    assert len({key.kid for key in parsed}) == 20
    assert len({key.public_bytes() for key in parsed}) == 20
    assert all(len(entry.partition(":")[2]) == 43 for entry in entries)  # 32 bytes, unpadded


def test_a_keys_repr_names_only_its_id() -> None:
    key = parse_signing_keys(f"k1:{SEED_A}")[0]

    assert "k1" in repr(key)
    assert SEED_A.rstrip("=") not in repr(key)
    assert RFC_SEED.hex() not in repr(key)


async def test_signatures_match_rfc_8032_and_verify_with_the_published_key() -> None:
    keys = configured(f"k1:{SEED_A}")
    await keys.ready()

    assert keys.sign(b"") == RFC_SIGNATURE
    content = fal_signed_content("req-1", "gateway", 1_700_000_000, b'{"status":"OK"}')
    signature = bytes.fromhex(keys.sign(content))
    assert len(signature) == 64
    public_key_from_jwk(keys.jwks()["keys"][0]).verify(signature, content)
    with pytest.raises(InvalidSignature):
        public_key_from_jwk(keys.jwks()["keys"][0]).verify(signature, content + b"x")


async def test_the_first_key_signs_and_every_key_is_published() -> None:
    keys = configured(f"new:{SEED_B},old:{SEED_A}")
    await keys.ready()
    content = b"content"

    jwks = keys.jwks()

    assert keys.signer.kid == "new"
    assert [jwk["kid"] for jwk in jwks["keys"]] == ["new", "old"]
    assert jwks["keys"][1] == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(RFC_PUBLIC),
        "kid": "old",
        "use": "sig",
        "alg": "EdDSA",
    }
    assert "=" not in jwks["keys"][0]["x"]
    public_key_from_jwk(jwks["keys"][0]).verify(bytes.fromhex(keys.sign(content)), content)
    with pytest.raises(InvalidSignature):
        public_key_from_jwk(jwks["keys"][1]).verify(bytes.fromhex(keys.sign(content)), content)


async def test_keys_are_unusable_before_ready_and_ready_refuses_bad_configuration() -> None:
    keys = configured("k1:short")

    with pytest.raises(RuntimeError, match="ready"):
        keys.jwks()
    with pytest.raises(ValueError, match="entry 1"):
        await keys.ready()


async def test_ready_loads_once() -> None:
    keys = configured(f"k1:{SEED_A}")
    await keys.ready()
    first = keys.signer

    await keys.ready()

    assert keys.signer is first


class StubRedis:
    """SET NX answers ``won``; GET answers ``stored``. Counts the calls."""

    def __init__(self, *, won: bool, stored: str | None) -> None:
        self.won, self.stored, self.sets, self.gets = won, stored, 0, 0

    async def set(self, key: str, value: str, *, nx: bool) -> bool:
        assert nx
        self.sets += 1
        await asyncio.sleep(0)  # a round trip: other ready() calls run meanwhile
        return self.won

    async def get(self, key: str) -> str | None:
        self.gets += 1
        return self.stored


async def test_concurrent_ready_calls_load_the_shared_key_once() -> None:
    redis = StubRedis(won=False, stored=f"shared:{SEED_A}")
    keys = SigningKeys(cast("Redis", redis), None)

    await asyncio.gather(*(keys.ready() for _ in range(10)))

    assert (redis.sets, redis.gets) == (1, 1)
    assert keys.signer.kid == "shared"
    assert keys.sign(b"") == RFC_SIGNATURE


async def test_a_shared_key_that_keeps_vanishing_is_an_error_after_a_few_tries() -> None:
    redis = StubRedis(won=False, stored=None)  # someone deletes it between every SET NX and GET
    keys = SigningKeys(cast("Redis", redis), None)

    with pytest.raises(RuntimeError, match="disappearing"):
        await keys.ready()

    assert (redis.sets, redis.gets) == (3, 3)


# Standard Webhooks, checked by the specification's own Python package.

WEBHOOK_ID = "msg_2b7f0e3c"
BODY = b'{"request_id":"r-1","status":"OK","payload":{"video":{"url":"https://x/v.mp4"}}}'
OLD = new_secret(bytes(range(32)))
NEW = new_secret(bytes(range(100, 132)))


def headers(signature: str, timestamp: int, webhook_id: str = WEBHOOK_ID) -> dict[str, str]:
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def test_a_standard_signature_verifies_with_the_reference_package() -> None:
    now = int(time.time())

    signed = standard_signature(NEW, WEBHOOK_ID, now, BODY)

    assert Webhook(NEW).verify(BODY, headers(signed, now)) == {
        "request_id": "r-1",
        "status": "OK",
        "payload": {"video": {"url": "https://x/v.mp4"}},
    }


@pytest.mark.parametrize(
    ("body", "webhook_id", "secret", "shift"),
    [
        (BODY + b" ", WEBHOOK_ID, NEW, 0),  # tampered body
        (BODY, "msg_other", NEW, 0),  # another delivery's id
        (BODY, WEBHOOK_ID, OLD, 0),  # another secret
        (BODY, WEBHOOK_ID, NEW, 1),  # another timestamp
    ],
)
def test_the_reference_package_refuses_anything_else(body: bytes, webhook_id: str, secret: str, shift: int) -> None:
    now = int(time.time())
    signed = standard_signature(NEW, WEBHOOK_ID, now, BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers(signed, now + shift, webhook_id))


@pytest.mark.parametrize("receiver_secret", [OLD, NEW], ids=["receiver-has-old", "receiver-has-new"])
def test_during_a_rotation_both_signatures_go_out_and_either_secret_verifies(receiver_secret: str) -> None:
    now = int(time.time())

    value = standard_signatures([NEW, OLD], WEBHOOK_ID, now, BODY)

    assert len(value.split(" ")) == 2
    assert all(part.startswith("v1,") for part in value.split(" "))
    Webhook(receiver_secret).verify(BODY, headers(value, now))


def test_after_the_grace_only_the_new_secret_verifies() -> None:
    now = int(time.time())

    value = standard_signatures([NEW], WEBHOOK_ID, now, BODY)

    Webhook(NEW).verify(BODY, headers(value, now))
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD).verify(BODY, headers(value, now))
