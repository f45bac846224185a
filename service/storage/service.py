"""The upload steps behind the storage routes: who may upload, how much, where the bytes go, and the audit entry.

A sandbox tenant's uploads never reach fal: their bytes go to the sandbox's files in Redis
(``service/simulator/files.py``, at most ``MAX_BYTES`` each), served at ``/_sandbox/files/...``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar import Request
from litestar.exceptions import HTTPException
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.audit import Actor, AuditLog
from service.config import Settings
from service.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    PayloadTooLarge,
    Unauthorized,
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from service.http import client_address
from service.netguard import GuardedClient
from service.simulator import files as sandbox_files
from service.simulator.files import SandboxFiles
from service.storage.grants import Taken, UploadGrant, UploadGrants
from service.storage.upstream import FalStorage, upstream_payload
from service.tenants.auth import Principal
from service.upstream.sandbox import SANDBOX_MOUNT
from service.upstream.selection import public_base

AnyRequest = Request[Any, Any, Any]
STORAGE_TYPES = frozenset({"fal-cdn-v3", "gcs"})
# What fal_client's CDN upload sends beside the bytes, forwarded as sent (client.py:1450-1463).
CDN_HEADERS = ("content-type", "x-fal-file-name", "x-fal-object-lifecycle", "x-fal-object-lifecycle-preference")
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_NAME_LENGTH = 1024
Holders = Callable[[str, str], Awaitable[Principal]]  # (tenant id, key id) -> the principal now, or 401/403


class _TooLarge(Exception):
    """Raised inside the body stream to abort the upstream request once the body passes the cap."""


@dataclass
class CappedBody:
    """The request body as a stream that stops (and aborts the upstream request) past ``limit`` bytes, or when the
    client goes away mid-body (``broken``)."""

    request: AnyRequest
    limit: int
    total: int = 0
    over: bool = field(default=False)
    broken: bool = field(default=False)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.request.stream():
                self.total += len(chunk)
                if self.total > self.limit:
                    self.over = True
                    raise _TooLarge
                if chunk:
                    yield chunk
        except HTTPException as exc:  # Litestar's own limit (413) or a client gone mid-body
            self.over = self.over or exc.status_code == 413
            self.broken = not self.over
            raise _TooLarge from None


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The upload is larger than this gateway's limit of {limit} bytes (GATEWAY_UPLOAD_MAX_BYTES)"
    )


def check_announced_size(request: AnyRequest, limit: int) -> None:
    """413 before anything is forwarded when the announced ``Content-Length`` is over ``limit``."""
    announced = request.headers.get("content-length")
    if announced is not None and announced.strip().isdigit() and int(announced) > limit:
        raise too_large(limit)


async def read_capped(body: CappedBody) -> bytes:
    """The whole body, or 413 past its cap (400 when the client went away mid-body)."""
    try:
        return b"".join([chunk async for chunk in body.chunks()])
    except _TooLarge:
        raise _cut_short(body) from None


def _cut_short(body: CappedBody) -> GatewayError:
    """What a body stream that stopped answers: 413 past its cap, else 400 (the client went away mid-body)."""
    return too_large(body.limit) if body.over else BadRequest("The upload's body ended early")


class Uploads:
    def __init__(  # noqa: PLR0913 - the upload steps' collaborators, all explicit
        self,
        grants: UploadGrants,
        fal: FalStorage,
        audit: AuditLog,
        settings: Settings,
        sandbox: SandboxFiles,
        *,
        holders: Holders,
    ) -> None:
        self.grants = grants
        self.holders = holders
        self._fal = fal
        self._sandbox = sandbox
        self._audit = audit
        self._settings = settings

    @property
    def max_bytes(self) -> int:
        return self._settings.upload_max_bytes

    async def count(self, tenant_id: str) -> None:
        await self.grants.count_upload(tenant_id, self._settings.upload_requests_per_minute)

    def limit(self, sandbox: bool) -> int:
        return min(self.max_bytes, sandbox_files.MAX_BYTES) if sandbox else self.max_bytes

    async def initiate(
        self, caller: Principal, storage_type: str, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> tuple[str, str]:
        """fal's initiate with the gateway's key (for a sandbox tenant, a sandbox file URL instead: no call at all);
        returns the id of the gateway's own upload URL, issued to the caller's key, and the file URL."""
        tenant_id, sandbox = caller.tenant_id, caller.tenant.sandbox
        if storage_type not in STORAGE_TYPES:
            raise BadRequest(f"Unsupported storage_type {storage_type!r}; this gateway serves fal-cdn-v3 and gcs")
        content_type = _text(body.get("content_type"), "content_type") or DEFAULT_CONTENT_TYPE
        file_name = _text(body.get("file_name"), "file_name") or "upload.bin"
        await self.count(tenant_id)
        if sandbox:
            answer = {"upload_url": "", "file_url": self._sandbox.new_url(file_name)}
        else:
            meta = {"content_type": content_type, "file_name": file_name}
            answer = await self._fal.initiate(storage_type, meta, headers)
        grant = UploadGrant(
            tenant_id=tenant_id,
            upstream_url=answer["upload_url"],
            content_type=content_type,
            file_name=file_name,
            file_url=answer["file_url"],
            max_bytes=self.limit(sandbox),
            sandbox=sandbox,
            key_id=caller.key_id,
        )
        return await self.grants.grant_upload(grant), grant.file_url

    async def put(self, request: AnyRequest, grant_id: str, caller: Principal | None, actor: Actor) -> None:
        """The bytes of a granted upload, streamed to fal's upload URL, or stored in the sandbox's files for a
        sandbox grant. The grant is taken for this one use; ``caller`` is who sent a key, if anyone did. A keyless
        PUT is served only while the key that initiated the upload is active and its tenant enabled and in the same
        world. A use that fails for a reason the client can retry past is undone: the URL works again."""
        check_announced_size(request, self.max_bytes)
        tenant_id, world = (None, None) if caller is None else (caller.tenant_id, caller.tenant.sandbox)
        taken = await self.grants.take_upload(grant_id, tenant_id, world)
        grant = taken.grant
        request.state.tenant_id = grant.tenant_id
        if grant.sandbox:
            request.state.sandbox = True  # service/http.py marks the response
        body = CappedBody(request, grant.max_bytes)
        try:
            if caller is None:
                holder = await self.holders(grant.tenant_id, grant.key_id)
                if holder.tenant.sandbox != grant.sandbox:
                    raise Forbidden("This upload URL was issued in the tenant's other world (sandbox or real)")
            check_announced_size(request, grant.max_bytes)
            content_type = await self._put_bytes(request, grant, body)
        except GatewayError as exc:
            await self._undo(taken, exc, body)
            raise
        await self._record(
            actor, grant.tenant_id, body.total, content_type, route="upload_url", file_url=grant.file_url
        )

    async def _put_bytes(self, request: AnyRequest, grant: UploadGrant, body: CappedBody) -> str:
        content_type = request.headers.get("content-type") or grant.content_type
        if grant.sandbox:
            await self._sandbox.store(grant.file_url, content_type, await read_capped(body))
            return content_type
        headers = {"Content-Type": content_type}
        if (length := request.headers.get("content-length")) is not None:
            headers["Content-Length"] = length
        response = await self._send(body, "PUT", grant.upstream_url, headers)
        if response.status_code >= 300:
            raise UpstreamRejected(response.status_code, upstream_payload(response))
        return content_type

    async def _undo(self, taken: Taken, exc: GatewayError, body: CappedBody) -> None:
        """Hand the grant back when ``exc`` is not final: its holder refused for now (key or tenant), fal failing or
        unreachable, the body cut off. Over the cap, or refused by fal (4xx), the URL stays used."""
        failing = isinstance(exc, UpstreamError) and exc.status_code >= 500
        if failing or body.broken or isinstance(exc, (Unauthorized, Forbidden)):
            with contextlib.suppress(RedisError):
                await self.grants.restore(taken)

    async def cdn_upload(self, request: AnyRequest, tenant_id: str, actor: Actor, *, sandbox: bool) -> Any:
        """fal_client's single-shot CDN upload, forwarded with the gateway's CDN token; fal's answer is returned.
        With a sandbox token the bytes are stored in the sandbox's files instead and answered in fal's shape."""
        check_announced_size(request, self.limit(sandbox))
        await self.count(tenant_id)
        if sandbox:
            return await self._sandbox_cdn_upload(request, tenant_id, actor)
        token = await self._fal.cdn_token()
        headers = {name: value for name in CDN_HEADERS if (value := request.headers.get(name)) is not None}
        headers.setdefault("content-type", DEFAULT_CONTENT_TYPE)
        if (length := request.headers.get("content-length")) is not None:
            headers["content-length"] = length
        headers["authorization"] = f"{token.token_type} {token.token}"
        body = CappedBody(request, self.max_bytes)
        response = await self._send(body, "POST", f"{token.base_url}/files/upload", headers)
        payload = upstream_payload(response)
        if response.status_code in {401, 403}:
            self._fal.forget_token()  # fal ended the token early: the next upload fetches a fresh one
            raise UpstreamUnavailable("fal's CDN refused the gateway's upload token; try again")
        if response.status_code >= 300:
            raise UpstreamRejected(response.status_code, payload)
        url = payload.get("access_url") if isinstance(payload, dict) else None
        await self._record(actor, tenant_id, body.total, headers["content-type"], route="cdn", file_url=url)
        return payload

    async def _sandbox_cdn_upload(self, request: AnyRequest, tenant_id: str, actor: Actor) -> Any:
        content_type = request.headers.get("content-type") or DEFAULT_CONTENT_TYPE
        url = self._sandbox.new_url(request.headers.get("x-fal-file-name") or "upload.bin")
        data = await read_capped(CappedBody(request, self.limit(True)))
        await self._sandbox.store(url, content_type, data)
        await self._record(actor, tenant_id, len(data), content_type, route="cdn", file_url=url)
        return {"access_url": url}

    async def _send(self, body: CappedBody, method: str, url: str, headers: Mapping[str, str]) -> httpx.Response:
        try:
            response = await self._fal.send(method, url, body.chunks(), headers)
        except (_TooLarge, UpstreamUnavailable):
            if body.over or body.broken:  # the body stopped, not fal: say why
                raise _cut_short(body) from None
            raise
        if body.over or body.broken:
            raise _cut_short(body)
        return response

    async def _record(  # noqa: PLR0913 - the audit entry's fields
        self, actor: Actor, tenant_id: str, size: int, content_type: str, *, route: str, file_url: str | None
    ) -> None:
        details = {"tenant_id": tenant_id, "bytes": size, "content_type": content_type, "route": route}
        await self._audit.record(actor, "storage.upload", tenant_id, {**details, "file_url": file_url})


def build_uploads(  # noqa: PLR0913 - settings, Redis, the client and what is checked on every use
    settings: Settings,
    redis: Redis,
    client: GuardedClient,
    *,
    rest_url: str,
    holders: Holders,
    clock: Callable[[], float],
) -> Uploads:
    """The upload steps over Redis and the guarded client for fal's storage API at ``rest_url``; ``holders``
    checks, on every use of an upload URL or token, the key and tenant it was issued to."""
    fal_key = settings.fal_key.get_secret_value() if settings.fal_key else "simulator"
    return Uploads(
        UploadGrants(redis, ttl_seconds=settings.upload_grant_seconds, clock=clock),
        FalStorage(client, rest_url=rest_url, fal_key=fal_key, clock=clock),
        AuditLog(redis, max_entries=settings.audit_max_entries, clock=clock),
        settings,
        # The same files as the sandbox upstream's (``service/upstream/sandbox.py``): the same URL, the same Redis.
        SandboxFiles(public_base(settings) + SANDBOX_MOUNT, ttl_seconds=settings.job_retention_seconds, redis=redis),
        holders=holders,
    )


def tenant_actor(request: AnyRequest, trusted_proxy_hops: int) -> Actor:
    """Who uploads, for the audit log: the address and user agent; never a key or token."""
    return Actor(
        source=client_address(request.scope, trusted_proxy_hops),
        user_agent=request.headers.get("user-agent"),
        operator=None,
        token_fingerprint=None,
    )


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME_LENGTH:
        raise BadRequest(f"{name} must be a string of at most {MAX_NAME_LENGTH} characters")
    return value
