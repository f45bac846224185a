"""The SSRF guard (service.netguard, through in-process transports: no network, no DNS), the bounded prefix fetch
and the produced-size probe built on them (service.budgets.media)."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

import service.simulator
from service.budgets.media import MediaProbe, fetch_prefix
from service.domain.urls import PUBLIC_ONLY, UNRESTRICTED, OutboundPolicy
from service.http import in_process_transport
from service.netguard import (
    FetchFailed,
    GuardedClient,
    UnsafeDestination,
    check_destination,
    guarded_transport,
    origin_of,
)
from service.simulator.app import create_simulator_app
from service.simulator.state import SimulatorConfig, SimulatorState
from tests.support.netfakes import PUBLIC_IP, Handler, compressed, fake_resolver, serving, stalling, trickling

MP4_720P = (Path(service.simulator.__file__).parent / "media" / "720p-1280x720.mp4").read_bytes()
SECRET = "X-Amz-Signature=supersecret"
VIDEO_URL = f"https://v3.fal.media/files/penguin/abc123/video.mp4?{SECRET}"


def client_for(handler: Handler, policy: OutboundPolicy = PUBLIC_ONLY, **guard: Any) -> GuardedClient:
    transport = guarded_transport(policy, inner=httpx.MockTransport(handler), resolver=fake_resolver, **guard)
    return GuardedClient(transport)


async def fetch(client: GuardedClient, url: str, **overrides: Any) -> bytes:
    options: dict[str, Any] = {"max_bytes": 1024, "timeout": 2.0}
    return await fetch_prefix(client, url, **(options | overrides))


def probe(client: GuardedClient, **overrides: Any) -> MediaProbe:
    return MediaProbe(client, **({"timeout": 2.0} | overrides))


# --- check_destination ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://rebind.example.com/video.mp4",
        "http://metadata.example.com/latest/meta-data/",
        "http://v6loop.example.com/",
        "http://mapped.example.com/",
        "https://sneaky.example.com/video.mp4",
        "http://127.0.0.1/video.mp4",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://10.1.2.3/",
        "http://localhost:8000/",
        "file:///etc/passwd",
        "https://user:pw@v3.fal.media/x",
        "https://nowhere.example.com/x",
        "https://empty.example.com/x",
        "https://garbage.example.com/x",
    ],
)
async def test_unsafe_destinations_are_refused(url: str) -> None:
    with pytest.raises(UnsafeDestination):
        await check_destination(url, PUBLIC_ONLY, resolver=fake_resolver)


async def test_a_name_that_does_not_resolve_says_so() -> None:
    with pytest.raises(UnsafeDestination, match="does not resolve"):
        await check_destination("https://nowhere.example.com/x", PUBLIC_ONLY, resolver=fake_resolver)


async def test_public_destinations_are_allowed_and_their_addresses_returned() -> None:
    assert await check_destination(VIDEO_URL, PUBLIC_ONLY, resolver=fake_resolver) == (
        ipaddress.ip_address(PUBLIC_IP),
        ipaddress.ip_address("2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
    )
    assert await check_destination(f"http://{PUBLIC_IP}/x", PUBLIC_ONLY, resolver=fake_resolver) == (
        ipaddress.ip_address(PUBLIC_IP),
    )


@pytest.mark.parametrize("url", ["http://127.0.0.1/v.mp4", "http://rebind.example.com/", "http://10.1.2.3/"])
async def test_an_unrestricted_policy_allows_private_addresses(url: str) -> None:
    await check_destination(url, UNRESTRICTED, resolver=fake_resolver)


async def test_an_unrestricted_policy_still_refuses_other_schemes() -> None:
    with pytest.raises(UnsafeDestination):
        await check_destination("ftp://127.0.0.1/x", UNRESTRICTED, resolver=fake_resolver)


async def test_the_system_resolver_is_the_default() -> None:
    # An IP literal is never resolved, so this runs offline.
    await check_destination(f"http://{PUBLIC_IP}/x", PUBLIC_ONLY)
    with pytest.raises(UnsafeDestination):
        await check_destination("http://[::ffff:127.0.0.1]/x", PUBLIC_ONLY)


# --- fetch_prefix --------------------------------------------------------------------------------------------------


async def test_the_range_header_asks_for_max_bytes() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(206, content=b"x" * 100)

    async with client_for(handler) as client:
        assert await fetch(client, VIDEO_URL, max_bytes=100) == b"x" * 100

    assert seen[0].headers["range"] == "bytes=0-99"
    assert seen[0].headers["accept-encoding"] == "identity"


async def test_the_clients_credentials_are_not_sent() -> None:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"ok")

    async with client_for(handler) as client:
        client.headers.update({"Authorization": "Key fal-secret", "User-Agent": "seedance-gateway/test"})
        client.cookies.set("session", "s3cret")
        client.auth = ("user", "password")
        assert await fetch(client, VIDEO_URL) == b"ok"

    assert "authorization" not in seen[0].headers
    assert "cookie" not in seen[0].headers
    assert seen[0].headers["user-agent"] == "seedance-gateway/test"


async def test_a_refused_destination_is_never_requested() -> None:
    calls: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, content=MP4_720P)

    async with client_for(handler) as client, client_for(handler, UNRESTRICTED) as unrestricted:
        with pytest.raises(UnsafeDestination):
            await fetch(client, "http://169.254.169.254/latest/meta-data/")
        assert await fetch(unrestricted, "http://169.254.169.254/x") == MP4_720P[:1024]

    assert len(calls) == 1


async def test_a_server_ignoring_range_is_read_only_up_to_max_bytes() -> None:
    chunk, total = 64 * 1024, 5 * 1024 * 1024
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(total // chunk):
            sent.append(chunk)
            yield b"\x00" * chunk

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body())

    async with client_for(handler) as client:
        data = await fetch(client, VIDEO_URL, max_bytes=100_000)

    assert len(data) == 100_000
    assert sum(sent) <= 100_000 + chunk  # it stopped reading, instead of draining 5 MB


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate, gzip"])
async def test_a_compressed_response_is_refused(encoding: str) -> None:
    async with client_for(compressed(encoding)) as client:
        with pytest.raises(FetchFailed, match="compressed"):
            await fetch(client, VIDEO_URL)


async def test_an_identity_encoding_is_read() -> None:
    async with client_for(serving(b"plain", 200, {"content-encoding": "identity"})) as client:
        assert await fetch(client, VIDEO_URL) == b"plain"


class EndlessStream(httpx.AsyncByteStream):
    """A body that never ends and records being closed (the connection goes back to the pool, or is dropped)."""

    def __init__(self) -> None:
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            yield b"\x00" * 4096

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize("status", [200, 206, 500, 302])
async def test_the_response_is_closed_whatever_happens(status: int) -> None:
    stream = EndlessStream()

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, stream=stream)

    async with client_for(handler) as client:
        with contextlib.suppress(FetchFailed):
            await fetch(client, VIDEO_URL, max_bytes=10_000)

    assert stream.closed


async def test_a_short_body_is_returned_whole() -> None:
    async with client_for(serving(b"tiny", 206)) as client:
        assert await fetch(client, VIDEO_URL) == b"tiny"


@pytest.mark.parametrize(
    ("status", "headers", "reason"),
    [
        (404, None, "HTTP 404"),
        (500, None, "HTTP 500"),
        (416, None, "HTTP 416"),
        (204, None, "HTTP 204"),
        (302, {"location": "http://169.254.169.254/latest/meta-data/"}, "redirect"),
        (301, {"location": "https://v3.fal.media/elsewhere"}, "redirect"),
        (307, None, "redirect"),
    ],
)
async def test_bad_statuses_and_redirects_fail(status: int, headers: dict[str, str] | None, reason: str) -> None:
    async with client_for(serving(b"body", status, headers)) as client:
        with pytest.raises(FetchFailed, match=reason):
            await fetch(client, VIDEO_URL)


async def test_a_redirect_is_not_followed_even_by_a_client_that_follows() -> None:
    calls: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(302, headers={"location": "http://127.0.0.1/secret"})

    async with client_for(handler) as client:
        client.follow_redirects = True
        with pytest.raises(FetchFailed):
            await fetch(client, VIDEO_URL)

    assert calls == [VIDEO_URL]


async def test_a_slow_server_fails_at_the_deadline() -> None:
    async with client_for(stalling(MP4_720P)) as client:
        with pytest.raises(FetchFailed, match="within"):
            await fetch(client, VIDEO_URL, timeout=0.05)


async def test_a_trickling_body_fails_at_the_deadline() -> None:
    async with client_for(trickling()) as client:
        with pytest.raises(FetchFailed, match="within"):
            await fetch(client, VIDEO_URL, timeout=0.1)


@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("bad")]
)
async def test_transport_errors_become_fetch_failed(error: httpx.HTTPError) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise error

    async with client_for(handler) as client:
        with pytest.raises(FetchFailed) as raised:
            await fetch(client, VIDEO_URL)

    assert raised.value.__cause__ is error


async def test_max_bytes_must_be_positive() -> None:
    async with client_for(serving(b"")) as client:
        with pytest.raises(ValueError, match="positive"):
            await fetch(client, VIDEO_URL, max_bytes=0)


# --- MediaProbe ----------------------------------------------------------------------------------------------------


async def test_the_probe_reads_the_size_of_a_real_video() -> None:
    async with client_for(serving(MP4_720P)) as client:
        size = await probe(client).produced_size({"video": {"url": VIDEO_URL, "content_type": "video/mp4"}, "seed": 1})

    assert size == (1280, 720)


async def test_the_probe_refuses_a_private_video_url() -> None:
    async with client_for(serving(MP4_720P)) as client, client_for(serving(MP4_720P), UNRESTRICTED) as unrestricted:
        assert await probe(client).produced_size({"video": {"url": "http://127.0.0.1:9000/v.mp4"}}) is None
        assert await probe(unrestricted).produced_size({"video": {"url": "http://127.0.0.1/v.mp4"}}) == (1280, 720)


async def test_a_trusted_origin_skips_the_private_check_for_that_origin_only() -> None:
    trusted = probe(client_for(serving(MP4_720P), trusted_origins={"HTTP://127.0.0.1:9000/"}))

    assert await trusted.produced_size({"video": {"url": "http://127.0.0.1:9000/media/v.mp4"}}) == (1280, 720)
    assert await trusted.produced_size({"video": {"url": "http://127.0.0.1:9001/media/v.mp4"}}) is None
    assert await trusted.produced_size({"video": {"url": "https://127.0.0.1:9000/media/v.mp4"}}) is None
    assert await trusted.produced_size({"video": {"url": "http://169.254.169.254/latest"}}) is None


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://sim", "http://sim"),
        ("HTTP://Sim:80/path?q=1", "http://sim"),
        ("https://v3.fal.media:443", "https://v3.fal.media"),
        ("https://v3.fal.media:8443/x", "https://v3.fal.media:8443"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("/relative/path", None),
        ("http://host:99999/", None),
    ],
)
def test_origins_are_normalised(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_a_malformed_trusted_origin_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="trusted origins"):
        guarded_transport(PUBLIC_ONLY, trusted_origins=["sim:8000"])


@pytest.mark.parametrize(
    "result",
    [
        None,
        "https://v3.fal.media/v.mp4",
        [],
        {},
        {"seed": 1},
        {"video": None},
        {"video": "https://v3.fal.media/v.mp4"},
        {"video": {}},
        {"video": {"url": None}},
        {"video": {"url": ""}},
        {"video": {"url": 42}},
        {"video": [{"url": VIDEO_URL}]},
    ],
)
async def test_malformed_results_give_none_without_fetching(result: Any) -> None:
    calls: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, content=MP4_720P)

    async with client_for(handler) as client:
        assert await probe(client).produced_size(result) is None

    assert calls == []


@pytest.mark.parametrize(
    ("handler", "url", "reason"),
    [
        (serving(b"", 403), VIDEO_URL, "HTTP 403"),
        (serving(MP4_720P), f"http://10.0.0.1/files/video.mp4?{SECRET}", "private"),
        (serving(b"<html>not a video</html>"), VIDEO_URL, "no video size"),
        (serving(MP4_720P[:500]), VIDEO_URL, "no video size"),
    ],
)
async def test_failures_log_the_host_but_never_the_path_or_query(handler: Handler, url: str, reason: str) -> None:
    async with client_for(handler) as client:
        with capture_logs() as logs:
            assert await probe(client).produced_size({"video": {"url": url}}) is None

    assert len(logs) == 1
    entry = logs[0]
    assert entry["event"] == "media_probe_failed"
    assert entry["log_level"] == "warning"
    assert reason in entry["reason"]
    assert entry["host"] == httpx.URL(url).host
    text = repr(logs)
    assert "supersecret" not in text
    assert "video.mp4" not in text
    assert "/files" not in text


async def test_a_transport_error_logs_no_url() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}")

    async with client_for(handler) as client:
        with capture_logs() as logs:
            assert await probe(client).produced_size({"video": {"url": VIDEO_URL}}) is None

    assert "ConnectError" in logs[0]["reason"]
    assert "supersecret" not in repr(logs)


async def test_the_probe_reads_a_video_from_the_real_simulator() -> None:
    sim = create_simulator_app(SimulatorState(SimulatorConfig(queue_seconds=0, processing_seconds=0)))
    inner = in_process_transport(sim)
    trusted = GuardedClient(guarded_transport(PUBLIC_ONLY, inner=inner, trusted_origins={"http://sim"}))
    async with trusted, GuardedClient(guarded_transport(PUBLIC_ONLY, inner=inner)) as untrusted:
        size = await MediaProbe(trusted).produced_size({"video": {"url": "http://sim/media/1080p-2206x946.mp4"}})
        refused = await MediaProbe(untrusted).produced_size({"video": {"url": "http://sim/media/1080p-2206x946.mp4"}})

    assert size == (2206, 946)
    assert refused is None  # "sim" is no public name: without trust it does not pass the guard
