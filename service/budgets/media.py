"""The width x height a finished job actually produced, read from the header of its output video (for settlement)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from service.domain.mp4 import video_size
from service.netguard import (
    Destinations,
    FetchFailed,
    Resolver,
    UnsafeDestination,
    fetch_prefix,
    system_resolver,
)

log = structlog.get_logger(__name__)


class MediaProbe:
    """Fetches the start of a result's ``video.url`` and reads its size from the MP4 header.

    fal's output is only ``{"video": {"url": ...}, "seed": ...}``, so the produced size is not in the result. The URL
    comes from upstream, so it goes through the SSRF guard like any other URL the gateway did not choose, except for
    ``trusted_origins``: the operator's own upstream (the simulator on loopback, a proxy on a private network), whose
    media URLs are private by design and come from a server the operator runs. Trust is by exact origin
    (scheme, host, port), so a trusted loopback simulator does not open the rest of loopback.
    """

    def __init__(  # noqa: PLR0913 - the fetch bounds are configuration
        self,
        client: httpx.AsyncClient,
        *,
        max_bytes: int = 256 * 1024,
        timeout: float = 5.0,
        allow_private: bool = False,
        trusted_origins: Collection[str] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        self._client = client
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._destinations = Destinations(
            allow_private=allow_private, trusted_origins=trusted_origins, resolver=resolver
        )

    async def produced_size(self, result: Any) -> tuple[int, int] | None:
        """Width and height of the video in a model output, or None when it has none or it cannot be read."""
        url = _video_url(result)
        if url is None:
            return None
        try:
            data = await fetch_prefix(
                self._client,
                url,
                max_bytes=self._max_bytes,
                timeout=self._timeout,
                allow_private=self._destinations.allows_private(url),
                resolver=self._destinations.resolver,
            )
        except (UnsafeDestination, FetchFailed) as exc:
            _warn(str(exc), url)
            return None
        size = video_size(data)
        if size is None:
            _warn(f"no video size in the first {len(data)} bytes", url)
        return size


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
