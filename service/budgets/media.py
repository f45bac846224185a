"""The width x height a finished job actually produced, read from the header of its output video (for settlement)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from service.domain.mp4 import video_size
from service.netguard import FetchFailed, GuardedClient, UnsafeDestination, open_outbound

log = structlog.get_logger(__name__)


class MediaProbe:
    """Fetches the start of a result's ``video.url`` and reads its size from the MP4 header.

    fal's output is only ``{"video": {"url": ...}, "seed": ...}``, so the produced size is not in the result. The URL
    comes from upstream, so it goes through the SSRF guard like any other URL the gateway did not choose: the
    client's :class:`service.netguard.GuardedTransport`, whose policy and trusted origins (the operator's own
    upstream, matched by exact origin) the wiring chooses.
    """

    def __init__(self, client: GuardedClient, *, max_bytes: int = 256 * 1024, timeout: float = 5.0) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self._client = client
        self._max_bytes = max_bytes
        self._timeout = timeout

    async def produced_size(self, result: Any) -> tuple[int, int] | None:
        """Width and height of the video in a model output, or None when it has none or it cannot be read."""
        url = _video_url(result)
        if url is None:
            return None
        try:
            data = await fetch_prefix(self._client, url, max_bytes=self._max_bytes, timeout=self._timeout)
        except (UnsafeDestination, FetchFailed) as exc:
            _warn(str(exc), url)
            return None
        size = video_size(data)
        if size is None:
            _warn(f"no video size in the first {len(data)} bytes", url)
        return size


async def fetch_prefix(
    client: GuardedClient,
    url: str,
    *,
    max_bytes: int,
    timeout: float,  # noqa: ASYNC109 - a configured total deadline, applied below with asyncio.timeout
) -> bytes:
    """The first ``max_bytes`` (or fewer, if the body is shorter) of the body at ``url``.

    Raises :class:`UnsafeDestination` when the guard refuses the URL and :class:`FetchFailed` for anything else that
    goes wrong, including a redirect and running past ``timeout`` seconds, which bounds the lookup, the connection
    and the whole body together.
    """
    if max_bytes < 1:
        raise ValueError("max_bytes must be positive")
    try:
        async with asyncio.timeout(timeout):
            return await _read_prefix(client, url, max_bytes)
    except TimeoutError:
        raise FetchFailed(f"no complete answer within {timeout:g} s") from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
        # The class name only: some messages quote the URL, and the reason gets logged (signed URLs carry tokens).
        raise FetchFailed(f"transport error ({type(exc).__name__})") from exc


async def _read_prefix(client: GuardedClient, url: str, max_bytes: int) -> bytes:
    response = await open_outbound(client, url, {"Range": f"bytes=0-{max_bytes - 1}"})
    try:
        if response.status_code not in {200, 206}:
            raise FetchFailed(f"HTTP {response.status_code}")
        # A server may ignore Range and send the whole file with 200: stop reading at max_bytes regardless.
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk[: max_bytes - len(body)]
            if len(body) >= max_bytes:
                break
        return bytes(body)
    finally:
        await response.aclose()


def _video_url(result: Any) -> str | None:
    video = result.get("video") if isinstance(result, dict) else None
    url = video.get("url") if isinstance(video, dict) else None
    return url if isinstance(url, str) and url else None


def _warn(reason: str, url: str) -> None:
    # The host only: media URLs are often signed, and the path or query carries the token.
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    log.warning("media_probe_failed", reason=reason, host=host)
