"""Content hashes of image-to-video inputs (``image_url``, ``end_image_url``) for the result cache key."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import Mapping
from urllib.parse import unquote_to_bytes, urlsplit

import httpx
import structlog

from service.netguard import FetchFailed, GuardedClient, UnsafeDestination, open_outbound

log = structlog.get_logger(__name__)


class ImageHasher:
    """Hashes the bytes behind an image URL, so the cache key follows the image and not the URL that names it.

    The same image under two URLs (a re-signed link, a copy on another CDN) then shares a cache entry, and an image
    replaced under the same URL does not reuse the old result. Every failure returns None and the caller hashes the
    URL instead: a content hash only improves the cache, it must never fail a request. URLs go through the SSRF
    guard of the client's :class:`service.netguard.GuardedTransport`; ``data:`` URIs are decoded and hashed
    locally, never fetched.
    """

    def __init__(self, client: GuardedClient, *, max_bytes: int = 20 * 1024 * 1024, timeout: float = 10.0) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self._client = client
        self._max_bytes = max_bytes
        self._timeout = timeout

    async def digest(self, url: str) -> str | None:
        """``"sha256:<hex>"`` of the image bytes at ``url`` (or in a ``data:`` URI), or None if they cannot be read."""
        try:
            if url[:5].lower() == "data:":
                return f"sha256:{hashlib.sha256(self._decode_data_uri(url)).hexdigest()}"
            async with asyncio.timeout(self._timeout):
                return await self._fetch_digest(url)
        except TimeoutError:
            _warn(f"no complete answer within {self._timeout:g} s", url)
        except (UnsafeDestination, FetchFailed) as exc:
            _warn(str(exc), url)
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            # The class name only: httpx messages can quote the URL, and signed URLs carry tokens.
            _warn(f"transport error ({type(exc).__name__})", url)
        return None

    async def digests(self, urls: Mapping[str, str]) -> dict[str, str]:
        """The digests of several named URLs, fetched concurrently; a name whose image cannot be read is left out."""
        names = list(urls)
        results = await asyncio.gather(*(self.digest(urls[name]) for name in names))
        return {name: result for name, result in zip(names, results, strict=True) if result is not None}

    def _decode_data_uri(self, url: str) -> bytes:
        header, comma, payload = url[5:].partition(",")
        if not comma:
            raise FetchFailed("malformed data URI (no comma)")
        if header.lower().endswith(";base64"):
            # Checked before decoding: n bytes never take more than ceil(n / 3) * 4 characters of padded base64.
            if len(payload) > -(-self._max_bytes // 3) * 4:
                raise FetchFailed(f"image larger than {self._max_bytes} bytes")
            try:
                data = base64.b64decode(payload, validate=True)
            except binascii.Error:
                raise FetchFailed("malformed data URI (invalid base64)") from None
        else:
            data = unquote_to_bytes(payload)  # RFC 2397 without ;base64: percent-encoded bytes
        if len(data) > self._max_bytes:
            raise FetchFailed(f"image larger than {self._max_bytes} bytes")
        if not data:
            raise FetchFailed("empty image")
        return data

    async def _fetch_digest(self, url: str) -> str:
        response = await open_outbound(self._client, url, {})
        try:
            # 200 only: without a Range request, a 206 would be a part of the image and hash to a wrong key.
            if response.status_code != 200:
                raise FetchFailed(f"HTTP {response.status_code}")
            if _declared_length(response) > self._max_bytes:
                raise FetchFailed(f"image larger than {self._max_bytes} bytes")
            # Incrementally: a 20 MB image is never held in memory, only the current chunk and the hash state.
            state, size = hashlib.sha256(), 0
            # aiter_bytes, not aiter_raw: raw fails on a body httpx has already read; the decoder is identity here.
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                # A too-large image fails outright: the hash of a prefix would collide with every image sharing it.
                if size > self._max_bytes:
                    raise FetchFailed(f"image larger than {self._max_bytes} bytes")
                state.update(chunk)
            if size == 0:
                raise FetchFailed("empty image")
            return f"sha256:{state.hexdigest()}"
        finally:
            await response.aclose()


def _declared_length(response: httpx.Response) -> int:
    # An absent or unreadable Content-Length is not an error: the streamed count below is the real bound.
    try:
        return int(response.headers.get("content-length", "0"))
    except ValueError:
        return 0


def _warn(reason: str, url: str) -> None:
    # The host only: image URLs are often signed, and the path or query carries the token (a data URI has no host).
    try:
        host = None if url[:5].lower() == "data:" else urlsplit(url).hostname
    except ValueError:
        host = None
    log.warning("image_hash_failed", reason=reason, host=host)
