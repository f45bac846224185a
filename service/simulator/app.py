"""The fal queue simulator's Litestar app: route wiring, fal-shaped errors, and the blocking ``serve_simulator``."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
import uvicorn
from litestar import Litestar, Request, Response, get, route
from litestar.datastructures import MutableScopeHeaders, State
from litestar.di import NamedDependency, Provide
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.types import Message, Scope

from service.simulator import queue
from service.simulator.control import control_router
from service.simulator.faults import FaultRule
from service.simulator.media import MEDIA_TYPE, media_bytes
from service.simulator.queue import REQUEST_ID_HEADER, AnyRequest, fal_json
from service.simulator.state import SimulatorConfig, SimulatorState
from service.simulator.storage import storage_router

__all__ = ["FaultRule", "SimulatorConfig", "SimulatorState", "create_simulator_app", "serve_simulator"]

logger = structlog.get_logger(__name__)

_REQUEST_PATH = re.compile(r"/?(?P<owner>[^/]+)/(?P<alias>[^/]+)/requests/(?P<request_id>[^/]+)(?P<action>/[^/]+)?/?")

_QueueCall = Callable[[SimulatorState, AnyRequest, str, str], Awaitable[Response[Any]]]
_REQUEST_ROUTES: dict[tuple[str, str | None], _QueueCall] = {
    ("GET", "/status"): queue.status,
    ("GET", None): queue.result,
    ("PUT", "/cancel"): queue.cancel,
}


@route("/{fal_path:path}", http_method=[HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT])
async def fal_queue(
    request: AnyRequest, fal_path: FromPath[str], sim: NamedDependency[SimulatorState]
) -> Response[Any]:
    """Every queue call, dispatched by method and path shape.

    A root-level ``{path:path}`` route shadows every other parameterised route in Litestar's router, so submit
    (``POST /<full endpoint id>``) and the ``<owner>/<alias>/requests/<id>[/status|/cancel]`` calls share it.
    """
    if request.method == HttpMethod.POST:
        return await queue.submit(sim, request, fal_path)
    match = _REQUEST_PATH.fullmatch(fal_path)
    if match is None:
        return fal_json({"detail": "Not Found", "error_type": "not_found"}, 404)
    call = _REQUEST_ROUTES.get((request.method, match["action"]))
    if call is None:
        known = any(action == match["action"] for _, action in _REQUEST_ROUTES)
        status, detail = (405, "Method Not Allowed") if known else (404, "Not Found")
        return fal_json({"detail": detail, "error_type": "bad_request" if known else "not_found"}, status)
    return await call(sim, request, f"{match['owner']}/{match['alias']}", match["request_id"])


@get("/media/{name:str}", sync_to_thread=False)
def media(name: FromPath[str]) -> Response[Any]:
    """The stand-in output videos; like fal's CDN, no credentials are needed to download them."""
    data = media_bytes(name)
    if data is None:
        return fal_json({"detail": "File not found", "error_type": "not_found"}, 404)
    return Response(content=data, media_type=MEDIA_TYPE, headers={"cache-control": "public, max-age=86400"})


@get("/.well-known/jwks.json", sync_to_thread=False)
def jwks(sim: NamedDependency[SimulatorState]) -> Response[Any]:
    """The public key that webhook signatures verify against; unauthenticated, like fal's."""
    return fal_json(sim.jwks(), 200)


def create_simulator_app(state: SimulatorState | None = None) -> Litestar:
    """Build the simulator around ``state`` (a fresh one by default), exposed as ``app.state.simulator``.

    Job progress is derived from timestamps on every read, so the queue API works under ``httpx.ASGITransport``
    as it does under uvicorn. Only webhooks need a background task: the lifespan runs one, and where no lifespan
    runs (``ASGITransport``) tests call ``SimulatorState.deliver_due_webhooks`` or run ``run_webhook_loop``.
    """
    sim = state or SimulatorState()
    return Litestar(
        route_handlers=[fal_queue, media, jwks, control_router, storage_router],
        lifespan=[_webhook_loop],
        dependencies={"sim": Provide(_provide_simulator, sync_to_thread=False)},
        state=State({"simulator": sim}),
        exception_handlers={HTTPException: _http_error, Exception: _unexpected_error},
        before_send=[_ensure_request_id],
        # Litestar's default logging config rewires the root logger; the simulator runs inside other apps' tests.
        logging_config=None,
        openapi_config=None,
    )


def serve_simulator(host: str, port: int, config: SimulatorConfig) -> None:
    """Run the simulator with uvicorn until interrupted."""
    logger.info(
        "simulator_starting",
        host=host,
        port=port,
        key_required=config.fal_key is not None,
        queue_seconds=config.queue_seconds,
        processing_seconds=config.processing_seconds,
    )
    uvicorn.run(create_simulator_app(SimulatorState(config)), host=host, port=port, log_level="info")


@contextlib.asynccontextmanager
async def _webhook_loop(app: Litestar) -> AsyncIterator[None]:
    sim: SimulatorState = app.state.simulator
    task = asyncio.create_task(sim.run_webhook_loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _provide_simulator(state: State) -> SimulatorState:
    sim: SimulatorState = state.simulator
    return sim


async def _ensure_request_id(message: Message, _: Scope) -> None:
    # fal sends x-fal-request-id on every response, and fal_client's retry heuristic reads it (docs/protocol.md
    # §6.3), so errors raised by the router itself get a fresh one too.
    if message["type"] == "http.response.start":
        headers = MutableScopeHeaders.from_message(message)
        if headers.get(REQUEST_ID_HEADER) is None:
            headers[REQUEST_ID_HEADER] = str(uuid.uuid4())


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    error_type = "not_found" if exc.status_code == 404 else "bad_request" if exc.status_code < 500 else "internal_error"
    return fal_json({"detail": exc.detail, "error_type": error_type}, exc.status_code)


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.error("simulator_error", path=request.url.path, exc_info=exc)
    return fal_json({"detail": "Internal server error", "error_type": "internal_error"}, 500)
