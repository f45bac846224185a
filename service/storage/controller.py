"""fal's storage calls under ``/rest/storage`` (rest.fal.ai) and the CDN upload under ``/cdn`` (v3.fal.media), as the
official clients make them (docs/protocol.md §7). Every call is the tenant's: its key, or what the gateway handed
out for it (an upload URL, an upload token); fal only ever sees the gateway's own key. A sandbox tenant's uploads
(and the upload URLs and tokens it is handed, marked so) are served by the sandbox instead: fal sees nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from service.config import Settings
from service.errors import BadRequest, Forbidden, PayloadTooLarge
from service.storage.grants import TokenHolder
from service.storage.service import Uploads, tenant_actor
from service.tenants.auth import Authenticator, Principal, authenticate_request

AnyRequest = Request[Any, Any, Any]
UPLOADS_PATH = "/rest/storage/uploads"
MULTIPART = (
    "Multipart uploads are not served by this gateway: its upload limit (GATEWAY_UPLOAD_MAX_BYTES) is below the "
    "size at which the clients switch to them"
)
LIFECYCLE_HEADER = "x-fal-object-lifecycle"


class StorageController(Controller):
    path = "/rest/storage"
    tags = ["storage"]  # noqa: RUF012 - Litestar reads this class attribute

    @post("/upload/initiate", status_code=200)
    async def initiate(
        self,
        request: AnyRequest,
        principal: NamedDependency[Principal],
        uploads: NamedDependency[Uploads],
        settings: NamedDependency[Settings],
        storage_type: FromQuery[str] = "fal-cdn-v3",
    ) -> dict[str, str]:
        """``{"content_type", "file_name"}`` in; ``{"upload_url", "file_url"}`` out. ``upload_url`` is the gateway's:
        one PUT of the file's bytes within GATEWAY_UPLOAD_GRANT_SECONDS, no key needed."""
        body = _json_object(await request.body())
        forwarded = {LIFECYCLE_HEADER: value} if (value := request.headers.get(LIFECYCLE_HEADER)) else {}
        grant_id, file_url = await uploads.initiate(principal, storage_type, body, forwarded)
        return {"upload_url": f"{public_base(request, settings)}{UPLOADS_PATH}/{grant_id}", "file_url": file_url}

    @post("/upload/initiate-multipart", status_code=413)
    async def initiate_multipart(self, principal: NamedDependency[Principal]) -> None:
        del principal
        raise PayloadTooLarge(MULTIPART)

    @post("/upload/complete-multipart", status_code=413)
    async def complete_multipart(self, principal: NamedDependency[Principal]) -> None:
        del principal
        raise PayloadTooLarge(MULTIPART)

    @post("/auth/token", status_code=200)
    async def auth_token(
        self,
        request: AnyRequest,
        principal: NamedDependency[Principal],
        uploads: NamedDependency[Uploads],
        settings: NamedDependency[Settings],
        storage_type: FromQuery[str] = "fal-cdn-v3",
    ) -> dict[str, str]:
        """An upload token of the gateway's for ``/cdn/files/upload`` (``base_url``), reusable until ``expires_at``."""
        if storage_type != "fal-cdn-v3":
            raise BadRequest(f"Unsupported storage_type {storage_type!r}; tokens are for fal-cdn-v3")
        await uploads.count(principal.tenant_id)
        holder = TokenHolder(principal.tenant_id, principal.key_id, principal.tenant.sandbox)
        token, expires_at = await uploads.grants.mint_token(holder)
        return {
            "token": token,
            "token_type": "Bearer",
            "base_url": f"{public_base(request, settings)}/cdn",
            "expires_at": datetime.fromtimestamp(expires_at, UTC).isoformat(),
        }

    @put("/uploads/{grant_id:str}", status_code=200)
    async def upload(
        self,
        request: AnyRequest,
        grant_id: FromPath[str],
        uploads: NamedDependency[Uploads],
        authenticator: NamedDependency[Authenticator],
    ) -> dict[str, Any]:
        """The file's bytes for an upload URL from initiate. A key is optional (the URL is the capability); when one
        is sent, it must be the key of the tenant that initiated the upload, still of the same world (else 403).
        Without one, the key that initiated it must still be active and its tenant enabled (else 401/403)."""
        caller = None
        if request.headers.get("authorization"):
            caller = await authenticate_request(request, authenticator)
        actor = tenant_actor(request, authenticator.trusted_proxy_hops)
        await uploads.put(request, grant_id, caller, actor)
        return {}


class CdnController(Controller):
    """fal's CDN (``fal_client.client.CDN_URL``): the single-shot upload with a token from ``auth/token``."""

    path = "/cdn"
    tags = ["storage"]  # noqa: RUF012 - Litestar reads this class attribute

    @post("/files/upload", status_code=200)
    async def upload(
        self,
        request: AnyRequest,
        uploads: NamedDependency[Uploads],
        authenticator: NamedDependency[Authenticator],
    ) -> Response[Any]:
        """The raw bytes, ``Authorization: Bearer <token>``; ``{"access_url": ...}`` out, as fal's CDN answers. A
        token serves only while the key it was minted for is active, its tenant enabled (else 401/403) and in the
        world (sandbox or real) it was issued in (else 403)."""
        holder = await uploads.grants.token_holder(request.headers.get("authorization"))
        request.state.tenant_id = holder.tenant_id
        principal = await authenticator.holder(holder.tenant_id, holder.key_id)
        if principal.tenant.sandbox != holder.sandbox:
            raise Forbidden("This upload token was issued in the tenant's other world (sandbox or real); get a new one")
        if holder.sandbox:
            request.state.sandbox = True  # service/http.py marks the response
        actor = tenant_actor(request, authenticator.trusted_proxy_hops)
        payload = await uploads.cdn_upload(request, holder.tenant_id, actor, sandbox=holder.sandbox)
        return Response(content=payload, status_code=200, media_type="application/json")

    @post("/files/upload/multipart", status_code=413)
    async def multipart(self, request: AnyRequest, uploads: NamedDependency[Uploads]) -> None:
        await uploads.grants.token_holder(request.headers.get("authorization"))
        raise PayloadTooLarge(MULTIPART)


def public_base(request: AnyRequest, settings: Settings) -> str:
    """The gateway's own base URL as the clients reach it (as in status_url): GATEWAY_PUBLIC_URL or the request's."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("The body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object")
    return body
