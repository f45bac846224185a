"""Content hashes of image inputs for the cache key (service.cache.images), through the guard: no network, no DNS."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote_from_bytes

import httpx
import pytest
from structlog.testing import capture_logs

from service.cache.images import ImageHasher
from service.domain.urls import PUBLIC_ONLY, UNRESTRICTED, OutboundPolicy
from service.netguard import GuardedClient, guarded_transport
from tests.support.netfakes import Handler, compressed, fake_resolver, serving, stalling, trickling

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
OTHER_PNG = PNG[:-1] + b"\x01"
SECRET = "X-Amz-Signature=supersecret"
IMAGE_URL = f"https://cdn.example.com/uploads/tenant-7/cat.png?{SECRET}"
MIRROR_URL = "https://mirror.example.org/copies/cat-copy.png"


def recording(calls: list[httpx.Request], body: bytes = PNG) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, content=body)

    return handler


def guarded(handler: Handler, policy: OutboundPolicy = PUBLIC_ONLY, **guard: Any) -> GuardedClient:
    transport = guarded_transport(policy, inner=httpx.MockTransport(handler), resolver=fake_resolver, **guard)
    return GuardedClient(transport)


def hasher(
    handler: Handler, policy: OutboundPolicy = PUBLIC_ONLY, trusted_origins: tuple[str, ...] = (), **overrides: Any
) -> ImageHasher:
    client = guarded(handler, policy, trusted_origins=trusted_origins)
    return ImageHasher(client, **({"timeout": 2.0} | overrides))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def data_uri(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


# --- what is hashed ------------------------------------------------------------------------------------------------


async def test_the_digest_is_the_sha256_of_the_bytes() -> None:
    assert await hasher(serving(PNG)).digest(IMAGE_URL) == sha256(PNG)


async def test_the_same_bytes_under_two_urls_give_the_same_digest() -> None:
    images = hasher(serving(PNG))

    assert await images.digest(IMAGE_URL) == await images.digest(MIRROR_URL)


async def test_different_bytes_give_different_digests() -> None:
    first = await hasher(serving(PNG)).digest(IMAGE_URL)
    second = await hasher(serving(OTHER_PNG)).digest(IMAGE_URL)

    assert first is not None
    assert second is not None
    assert first != second


async def test_a_base64_data_uri_is_hashed_locally_like_the_same_bytes_over_http() -> None:
    calls: list[httpx.Request] = []
    images = hasher(recording(calls))

    from_data = await images.digest(data_uri(PNG))
    from_http = await images.digest(IMAGE_URL)

    assert from_data == from_http == sha256(PNG)
    assert len(calls) == 1  # only the http one: a data URI is never fetched
    assert await images.digest(data_uri(PNG, media_type="image/jpeg").replace("data:", "DATA:")) == sha256(PNG)


async def test_a_percent_encoded_data_uri_is_hashed_by_its_bytes() -> None:
    assert await hasher(serving(b"")).digest(f"data:image/svg+xml,{quote_from_bytes(PNG)}") == sha256(PNG)


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64",  # no comma
        "data:image/png;base64,!!!not base64!!!",
        "data:image/png;base64,iVBORw0KGgo",  # missing padding
        "data:image/png;base64,",  # nothing in it
        "data:,",
    ],
)
async def test_a_malformed_data_uri_gives_none(url: str) -> None:
    with capture_logs() as logs:
        assert await hasher(serving(PNG)).digest(url) is None

    assert logs[0]["event"] == "image_hash_failed"
    assert logs[0]["host"] is None


async def test_a_data_uri_larger_than_max_bytes_gives_none() -> None:
    images = hasher(serving(b""), max_bytes=len(PNG) - 1)

    assert await images.digest(data_uri(PNG)) is None
    assert await images.digest(f"data:,{quote_from_bytes(PNG)}") is None
    assert await hasher(serving(b""), max_bytes=len(PNG)).digest(data_uri(PNG)) == sha256(PNG)


# --- the SSRF guard ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/cat.png",
        "http://[::1]:8080/cat.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/cat.png",
        "http://localhost:8000/cat.png",
        "http://rebind.example.com/cat.png",
        "http://metadata.example.com/latest/meta-data/",
        "https://sneaky.example.com/cat.png",
        "https://nowhere.example.com/cat.png",
        "file:///etc/passwd",
        "ftp://cdn.example.com/cat.png",
        "https://user:pw@cdn.example.com/cat.png",
        "cat.png",
    ],
)
async def test_an_unsafe_destination_gives_none_without_a_request(url: str) -> None:
    calls: list[httpx.Request] = []

    assert await hasher(recording(calls)).digest(url) is None
    assert calls == []


async def test_a_trusted_origin_on_loopback_is_allowed_for_that_origin_only() -> None:
    calls: list[httpx.Request] = []
    images = hasher(recording(calls), trusted_origins=("HTTP://127.0.0.1:9000/",))

    assert await images.digest("http://127.0.0.1:9000/media/cat.png") == sha256(PNG)
    assert await images.digest("http://127.0.0.1:9001/media/cat.png") is None
    assert await images.digest("https://127.0.0.1:9000/media/cat.png") is None
    assert await images.digest("http://169.254.169.254/latest") is None
    assert [str(call.url) for call in calls] == ["http://127.0.0.1:9000/media/cat.png"]


async def test_an_unrestricted_policy_allows_private_addresses() -> None:
    images = hasher(serving(PNG), UNRESTRICTED)

    assert await images.digest("http://127.0.0.1/cat.png") == sha256(PNG)
    assert await images.digest("http://rebind.example.com/cat.png") == sha256(PNG)


def test_a_malformed_trusted_origin_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="trusted origins"):
        hasher(serving(PNG), trusted_origins=("sim:8000",))


def test_max_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        hasher(serving(PNG), max_bytes=0)


# --- the fetch -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (404, None),
        (500, None),
        (206, {"content-range": "bytes 0-99/5000"}),  # part of an image: its hash would be a wrong key
        (204, None),
        (302, {"location": "https://mirror.example.org/copies/cat-copy.png"}),
        (301, {"location": "http://169.254.169.254/latest/meta-data/"}),
    ],
)
async def test_bad_statuses_and_redirects_give_none(status: int, headers: dict[str, str] | None) -> None:
    assert await hasher(serving(PNG, status, headers)).digest(IMAGE_URL) is None


async def test_a_redirect_is_not_followed_even_by_a_client_that_follows() -> None:
    calls: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(302, headers={"location": MIRROR_URL})

    client = guarded(handler)
    client.follow_redirects = True
    assert await ImageHasher(client).digest(IMAGE_URL) is None
    assert calls == [IMAGE_URL]


async def test_an_empty_body_gives_none() -> None:
    assert await hasher(serving(b"")).digest(IMAGE_URL) is None


async def test_a_body_of_exactly_max_bytes_is_hashed() -> None:
    assert await hasher(serving(PNG), max_bytes=len(PNG)).digest(IMAGE_URL) == sha256(PNG)


async def test_a_body_larger_than_max_bytes_gives_none_and_is_not_read_to_the_end() -> None:
    chunk, count = 64 * 1024, 80  # 5 MiB, streamed without a Content-Length
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(count):
            sent.append(chunk)
            yield b"\x00" * chunk

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body())

    with capture_logs() as logs:
        assert await hasher(handler, max_bytes=100_000).digest(IMAGE_URL) is None

    assert len(sent) < count
    assert sum(sent) <= 100_000 + chunk  # it stopped at the first chunk past the limit
    assert "larger than 100000 bytes" in logs[0]["reason"]


async def test_a_declared_length_over_max_bytes_gives_none_before_reading() -> None:
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        sent.append(1)
        yield PNG

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body(), headers={"content-length": str(len(PNG))})

    assert await hasher(handler, max_bytes=len(PNG) - 1).digest(IMAGE_URL) is None
    assert sent == []


async def test_a_slow_server_gives_none_at_the_deadline() -> None:
    with capture_logs() as logs:
        assert await hasher(stalling(PNG), timeout=0.05).digest(IMAGE_URL) is None

    assert "within" in logs[0]["reason"]


async def test_a_trickling_body_gives_none_at_the_deadline() -> None:
    assert await hasher(trickling(), timeout=0.1).digest(IMAGE_URL) is None


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate, gzip"])
async def test_a_compressed_response_gives_none(encoding: str) -> None:
    with capture_logs() as logs:
        assert await hasher(compressed(encoding)).digest(IMAGE_URL) is None

    assert logs[0]["reason"] == "compressed response refused"


async def test_an_identity_encoding_is_hashed() -> None:
    assert await hasher(serving(PNG, 200, {"content-encoding": "identity"})).digest(IMAGE_URL) == sha256(PNG)


@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("bad")]
)
async def test_a_transport_error_gives_none(error: httpx.HTTPError) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise error

    with capture_logs() as logs:
        assert await hasher(handler).digest(IMAGE_URL) is None

    assert logs[0]["reason"] == f"transport error ({type(error).__name__})"


async def test_no_credentials_reach_the_server_and_identity_is_asked_for() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=PNG)

    client = guarded(handler)
    client.headers.update({"Authorization": "Key fal-secret", "User-Agent": "seedance-gateway/test"})
    client.cookies.set("session", "s3cret")
    client.auth = ("user", "password")
    assert await ImageHasher(client).digest(IMAGE_URL) == sha256(PNG)

    assert "authorization" not in seen[0].headers
    assert "cookie" not in seen[0].headers
    assert seen[0].headers["accept-encoding"] == "identity"
    assert seen[0].headers["user-agent"] == "seedance-gateway/test"


# --- logging and several URLs --------------------------------------------------------------------------------------


async def test_the_failure_log_names_the_host_but_not_the_path_or_query() -> None:
    with capture_logs() as logs:
        assert await hasher(serving(b"gone", 404)).digest(IMAGE_URL) is None

    assert len(logs) == 1
    entry = logs[0]
    assert entry["event"] == "image_hash_failed"
    assert entry["log_level"] == "warning"
    assert entry["host"] == "cdn.example.com"
    assert entry["reason"] == "HTTP 404"
    text = repr(entry)
    assert "supersecret" not in text
    assert "tenant-7" not in text
    assert "cat.png" not in text


async def test_digests_returns_only_the_images_that_could_be_read() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.example.com":
            return httpx.Response(200, content=PNG)
        return httpx.Response(500)

    images = hasher(handler)
    result = await images.digests({"image_url": IMAGE_URL, "end_image_url": MIRROR_URL})

    assert result == {"image_url": sha256(PNG)}
    assert await images.digests({}) == {}


async def test_digests_fetches_concurrently() -> None:
    started: list[str] = []
    both_started = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        started.append(str(request.url))
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), timeout=1)  # one at a time would time out here
        return httpx.Response(200, content=PNG if request.url.host == "cdn.example.com" else OTHER_PNG)

    result = await hasher(handler).digests({"image_url": IMAGE_URL, "end_image_url": MIRROR_URL})

    assert result == {"image_url": sha256(PNG), "end_image_url": sha256(OTHER_PNG)}
