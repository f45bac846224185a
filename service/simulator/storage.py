"""fal's storage API as the simulator serves it (docs/protocol.md §7): initiate an upload and PUT its bytes, a CDN
token and the CDN's single-shot upload, and the stored files served back at their ``file_url`` / ``access_url``."""

from __future__ import annotations

import secrets
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.router import Router

from service.simulator.files import safe_name
from service.simulator.queue import UNAUTHORIZED, fal_json, is_authorized
from service.simulator.state import SimulatorState

AnyRequest = Request[Any, Any, Any]
TOKEN_SECONDS = 3600
NOT_FOUND = {"detail": "File not found", "error_type": "not_found"}


@dataclass
class StoredFile:
    content_type: str
    data: bytes | None = None  # None until its bytes arrive (an initiated upload)


@dataclass
class SimStorage:
    """The simulator's files by id, its pending uploads, and the CDN tokens it issued."""

    files: dict[str, StoredFile] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    downloads: int = 0
    received_auth: list[str | None] = field(default_factory=list)  # Authorization of every upload (tests read it)

    def forget_files(self) -> None:
        """Drop every stored file and what the tests read; the CDN tokens stay valid, as a caller may cache one."""
        self.files.clear()
        self.downloads = 0
        self.received_auth.clear()

    def new_file(self, content_type: str) -> str:
        file_id = secrets.token_hex(12)
        self.files[file_id] = StoredFile(content_type=content_type)
        return file_id


_STORAGES: weakref.WeakKeyDictionary[SimulatorState, SimStorage] = weakref.WeakKeyDictionary()


def storage_of(sim: SimulatorState) -> SimStorage:
    """The storage of one simulator (made on first use; it lives as long as the simulator's state)."""
    storage = _STORAGES.get(sim)
    if storage is None:
        storage = _STORAGES[sim] = SimStorage()
    return storage


def _base(request: AnyRequest) -> str:
    return str(request.base_url).rstrip("/")


def _file_url(sim: SimulatorState, request: AnyRequest, file_id: str, name: str) -> str:
    base = (sim.config.media_base_url or _base(request)).rstrip("/")
    return f"{base}/files/{file_id}/{safe_name(name)}"


@post("/storage/upload/initiate", status_code=200)
async def initiate(request: AnyRequest, sim: NamedDependency[SimulatorState]) -> Response[Any]:
    if not is_authorized(sim.config.fal_key, request.headers.get("authorization")):
        return fal_json(UNAUTHORIZED, 401)
    body = await request.json() if (await request.body()).strip() else {}
    body = body if isinstance(body, dict) else {}
    content_type = str(body.get("content_type") or "application/octet-stream")
    file_id = storage_of(sim).new_file(content_type)
    file_url = _file_url(sim, request, file_id, str(body.get("file_name") or "upload.bin"))
    return fal_json({"upload_url": f"{_base(request)}/storage/uploads/{file_id}", "file_url": file_url}, 200)


@put("/storage/uploads/{file_id:str}", status_code=200)
async def receive_upload(
    request: AnyRequest, file_id: FromPath[str], sim: NamedDependency[SimulatorState]
) -> Response[Any]:
    """The PUT to an initiated upload's URL (a signed URL at fal: no key needed)."""
    storage = storage_of(sim)
    stored = storage.files.get(file_id)
    if stored is None or stored.data is not None:
        return fal_json(NOT_FOUND, 404)
    if (rule := sim.faults.take("upload", None)) is not None:
        return fal_json(rule.error_body(), rule.status)
    stored.data = await request.body()
    stored.content_type = request.headers.get("content-type") or stored.content_type
    storage.received_auth.append(request.headers.get("authorization"))
    return Response(content=b"", status_code=200)


@post("/storage/auth/token", status_code=200)
async def auth_token(request: AnyRequest, sim: NamedDependency[SimulatorState]) -> Response[Any]:
    if not is_authorized(sim.config.fal_key, request.headers.get("authorization")):
        return fal_json(UNAUTHORIZED, 401)
    token = secrets.token_urlsafe(24)
    storage_of(sim).tokens.add(token)
    expires = datetime.fromtimestamp(time.time() + TOKEN_SECONDS, UTC).isoformat()
    return fal_json({"token": token, "token_type": "Bearer", "base_url": _base(request), "expires_at": expires}, 200)


@post("/files/upload", status_code=200)
async def cdn_upload(request: AnyRequest, sim: NamedDependency[SimulatorState]) -> Response[Any]:
    """The CDN's single-shot upload, with a token from ``auth/token``."""
    storage = storage_of(sim)
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme != "Bearer" or token not in storage.tokens:
        return fal_json(UNAUTHORIZED, 401)
    if (rule := sim.faults.take("upload", None)) is not None:
        return fal_json(rule.error_body(), rule.status)
    file_id = storage.new_file(request.headers.get("content-type") or "application/octet-stream")
    storage.files[file_id].data = await request.body()
    storage.received_auth.append(request.headers.get("authorization"))
    name = request.headers.get("x-fal-file-name") or "upload.bin"
    return fal_json({"access_url": _file_url(sim, request, file_id, name)}, 200)


@get("/files/{file_id:str}/{name:str}", sync_to_thread=False)
def download(file_id: FromPath[str], name: FromPath[str], sim: NamedDependency[SimulatorState]) -> Response[Any]:
    """A stored file with its content type; public, like fal's CDN."""
    del name
    storage = storage_of(sim)
    stored = storage.files.get(file_id)
    if stored is None or stored.data is None:
        return fal_json(NOT_FOUND, 404)
    storage.downloads += 1
    return Response(content=stored.data, media_type=stored.content_type)


MAX_UPLOAD_BYTES = 128 * 1024 * 1024
storage_router = Router(
    "/",
    route_handlers=[initiate, receive_upload, auth_token, cdn_upload, download],
    request_max_body_size=MAX_UPLOAD_BYTES,
)
