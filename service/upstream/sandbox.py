"""The sandbox upstream: a simulator embedded in every gateway, beside the real one, that serves sandbox tenants.

A tenant with ``"sandbox": true`` has every upstream call of its jobs (submit, status, result, cancel) and every
media fetch (result probes, input images) made against this simulator, in-process; fal never hears of them. Only
its output videos and its tenants' uploads are served to the world, at ``/_sandbox/media/...`` and
``/_sandbox/files/...`` (``service/simulator/files.py``, from Redis): the simulator's queue, storage and control API
are not mounted, so nobody can reach them from outside.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from litestar.handlers import asgi
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from service.config import Settings
from service.errors import UpstreamUnavailable
from service.metrics import Metrics
from service.netguard import guarded_transport
from service.outbound import fetch_policy
from service.upstream.fal import FalClient
from service.upstream.selection import Upstream, public_base, trusted_origin

if TYPE_CHECKING:
    from service.simulator.files import SandboxFiles
    from service.simulator.state import SimulatorState

SANDBOX_MOUNT = "/_sandbox"
NO_SANDBOX = "This gateway process has no sandbox upstream, so the sandbox tenant's job cannot be served"
_NOT_FOUND = b'{"detail":"Not Found","error_type":"not_found"}'


@dataclass(frozen=True, slots=True)
class Sandbox:
    upstream: Upstream
    simulator: SimulatorState  # its jobs are shared with the other replicas' (``service/simulator/shared.py``)
    files: SandboxFiles  # its tenants' uploads, in Redis once the gateway attaches it


def sandbox_upstream(settings: Settings) -> Sandbox:
    """The embedded sandbox simulator as an upstream, its media mounted at ``/_sandbox/media``. It runs on wall-clock
    time, as every replica's sandbox must to answer for the others' jobs."""
    from service.simulator.embedded import embedded_simulator  # noqa: PLC0415 - keeps the simulator off the import path
    from service.simulator.files import SandboxFiles, SharedFilesTransport, is_file_path  # noqa: PLC0415 - as above

    sim = embedded_simulator(
        public_base(settings) + SANDBOX_MOUNT,
        queue_seconds=settings.sandbox_queue_seconds,
        processing_seconds=settings.sandbox_processing_seconds,
        clock=time.time,
        # Other URLs (a sandbox tenant's input images) go out pinned to the addresses the guard checked, as always.
        network=guarded_transport(
            fetch_policy(settings.image_hash_allow_private and settings.media_probe_allow_private)
        ),
    )
    files = SandboxFiles(sim.public_base, ttl_seconds=settings.job_retention_seconds)

    async def media_only(scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", "")).removeprefix(SANDBOX_MOUNT)
        readable = scope.get("method") in {"GET", "HEAD"}
        if readable and path.startswith("/media/"):
            await sim.app({**scope, "path": path, "raw_path": path.encode()}, receive, send)  # type: ignore[arg-type]
            return
        if readable and is_file_path(path):
            await _answer(send, *await files.read(path))
            return
        await _answer(send, 404, "application/json", _NOT_FOUND)

    mount = asgi(SANDBOX_MOUNT, is_mount=True, copy_scope=True, include_in_schema=False)(media_only)
    media = SharedFilesTransport(files, sim.media_transport)
    upstream = Upstream(sim.upstream_url, sim.transport, mount, media, trusted_origin(sim.public_base))
    return Sandbox(upstream, sim.state, files)


async def _answer(send: Send, status: int, content_type: str, content: bytes) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(content)).encode())]
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status, "headers": headers}
    body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": content, "more_body": False}
    await send(start)
    await send(body)


def fal_client(
    settings: Settings, http: httpx.AsyncClient, metrics: Metrics, *, factory: Callable[..., FalClient] = FalClient
) -> FalClient:
    """The upstream client of ``http`` (fal's or the sandbox simulator's), behind breakers of its own."""
    return factory(
        http,
        metrics=metrics,
        submit_timeout=settings.upstream_submit_timeout_seconds,
        submit_connect_retries=settings.upstream_submit_connect_retries,
        breaker_failures=settings.upstream_breaker_failures,
        breaker_cooldown_seconds=settings.upstream_breaker_cooldown_seconds,
        breaker_probes=settings.upstream_breaker_probes,
    )


def upstream_for(sandbox: bool, fal: FalClient, sandbox_fal: FalClient | None) -> FalClient:
    """A job's upstream client: the sandbox simulator's for a sandbox job (never fal's, even with none), else fal's."""
    if not sandbox:
        return fal
    if sandbox_fal is None:
        raise UpstreamUnavailable(NO_SANDBOX, status_code=503)
    return sandbox_fal
