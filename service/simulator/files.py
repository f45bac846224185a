"""The sandbox's stored files: what sandbox tenants upload (``service/storage/``) kept in Redis, so that every
replica serves them, at ``<sandbox mount>/files/<id>/<name>`` with their content type, to the world and in-process
(to the gateway's own reads of a sandbox tenant's input images). fal never sees them.

A file lives ``ttl_seconds`` (the gateway passes its job retention, at most a day) and is at most ``MAX_BYTES``.
Redis holds it base64-encoded, as the gateway's clients decode every answer as text.
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import cast

import httpx
from redis.asyncio import Redis

from service import keys

MAX_BYTES = 8 * 1024 * 1024  # below GATEWAY_UPLOAD_MAX_BYTES' default: a sandbox file costs Redis memory
MAX_TTL_SECONDS = 24 * 3600
_FILE_PATH = re.compile(r"/files/(?P<file_id>[0-9a-f]{24})/[^/]+/?")  # a mount adds the last slash
_NOT_FOUND = b'{"detail":"File not found","error_type":"not_found"}'


class SandboxFiles:
    """Sandbox files under ``base_url`` (the sandbox mount's public URL); ``redis`` may be attached later."""

    def __init__(self, base_url: str, *, ttl_seconds: int, redis: Redis | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.ttl_seconds = min(ttl_seconds, MAX_TTL_SECONDS)
        self.redis = redis

    def new_url(self, name: str) -> str:
        """The URL of a fresh file id (its bytes come with :meth:`store`)."""
        return f"{self.base_url}/files/{secrets.token_hex(12)}/{safe_name(name)}"

    async def store(self, url: str, content_type: str, data: bytes) -> None:
        file_id = _file_id(url.removeprefix(self.base_url))
        if file_id is None:
            raise ValueError(f"not a sandbox file URL: {url}")
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.hset(keys.sandbox_file(file_id), mapping={"type": content_type, "data": base64.b64encode(data)})
            pipe.expire(keys.sandbox_file(file_id), self.ttl_seconds)
            await pipe.execute()

    async def read(self, path: str) -> tuple[int, str, bytes]:
        """Status, content type and body of a GET of ``path`` (``/files/<id>/<name>``, below the mount)."""
        file_id = _file_id(path)
        found = None if file_id is None else await self._client().hmget(keys.sandbox_file(file_id), ["type", "data"])
        content_type, data = cast("list[str | None]", found or [None, None])
        if content_type is None or data is None:
            return 404, "application/json", _NOT_FOUND
        return 200, content_type, base64.b64decode(data)

    def _client(self) -> Redis:
        if self.redis is None:
            raise RuntimeError("the sandbox files have no Redis attached yet")
        return self.redis


def is_file_path(path: str) -> bool:
    return path.startswith("/files/")


def safe_name(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name.rsplit("/", 1)[-1])
    return cleaned[:100] or "upload.bin"


def _file_id(path: str) -> str | None:
    match = _FILE_PATH.fullmatch(path)
    return None if match is None else match["file_id"]


class SharedFilesTransport(httpx.AsyncBaseTransport):
    """Answers GETs of the sandbox's files from Redis; every other request goes to ``inner``."""

    def __init__(self, files: SandboxFiles, inner: httpx.AsyncBaseTransport) -> None:
        self._files, self._inner = files, inner
        self._prefix = files.base_url + "/files/"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url.copy_with(query=None))
        if request.method in {"GET", "HEAD"} and url.startswith(self._prefix):
            status, content_type, body = await self._files.read(url.removeprefix(self._files.base_url))
            return httpx.Response(status, headers={"content-type": content_type}, content=body)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
