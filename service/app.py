"""``create_app(settings, ...)``: wiring only. Clients open in the lifespan and close in its ``finally``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any

import httpx
import structlog
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import ControllerRouterHandler
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service import redis_timing
from service.apidoc.config import GatewayOpenAPIConfig
from service.apidoc.controller import endpoint_openapi
from service.background import cancel_and_wait
from service.budgets.controller import BudgetAdminController, UsageController
from service.cache.controller import CacheAdminController
from service.clients import open_clients
from service.config import Settings
from service.container import Deps, build_deps
from service.docs_page import DOCS_PATH, docs_asset, docs_pages
from service.health import healthz, metrics_endpoint, readyz
from service.http import exception_handler, request_context_middleware
from service.jobs.census import JobCensus
from service.jobs.completion import CompletionHook
from service.jobs.controller import EstimateController, QueueController, RunController
from service.jobs.fal_webhooks import FalWebhookController
from service.jobs.history import RequestHistoryController
from service.metrics import Metrics
from service.netguard import Resolver, system_resolver
from service.providers import dependencies
from service.proxy import proxy_dispatch, proxy_route
from service.redis_client import connect
from service.storage.controller import CdnController, StorageController
from service.tenants.auth import provide_principal
from service.tenants.controller import AdminController, SelfServiceController
from service.upstream.sandbox import sandbox_upstream
from service.upstream.selection import select_upstream
from service.webhooks.controller import TenantWebhookController, WebhookAdminController, jwks

SUBMIT_CONTROLLERS: tuple[ControllerRouterHandler, ...] = (QueueController, RunController, EstimateController)
API_CONTROLLERS: tuple[ControllerRouterHandler, ...] = (
    AdminController,
    RequestHistoryController,
    SelfServiceController,
    UsageController,
    BudgetAdminController,
    CacheAdminController,
    TenantWebhookController,
    WebhookAdminController,
    FalWebhookController,
)
STORAGE_CONTROLLERS: tuple[ControllerRouterHandler, ...] = (StorageController, CdnController)
SHUTDOWN_WAIT_SECONDS = 10
log = structlog.get_logger(__name__)


def create_app(  # noqa: PLR0913 - every collaborator a test may want to replace
    settings: Settings,
    *,
    redis: Redis | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
    serve_api: bool = True,
    completion_hooks: tuple[CompletionHook, ...] = (),
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    outbound_resolver: Resolver = system_resolver,
) -> Litestar:
    """Build the gateway. ``redis`` and ``upstream_transport`` are used as given and not closed by the app.

    ``serve_api=False`` builds the worker role: the tracker plus health and metrics, no tenant routes.
    ``completion_hooks`` run once for every job that completes (see ``service/jobs/completion.py``), after the
    webhook hook; ``webhook_transport`` routes webhook deliveries in-process (tests), still behind the guard, and
    ``outbound_resolver`` resolves webhook hosts (tests inject names).
    """
    metrics = metrics or Metrics()
    upstream = select_upstream(settings, upstream_transport)
    sandbox = sandbox_upstream(settings)  # sandbox tenants' upstream, beside the real one in every deployment

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        r = redis if redis is not None else connect(settings, observe=redis_timing.observer(metrics))
        clients = open_clients(
            settings, upstream, r, webhook_transport=webhook_transport, resolver=outbound_resolver, sandbox=sandbox
        )
        deps = build_deps(settings, clients, metrics=metrics, clock=clock, hooks=completion_hooks)
        app.state.deps = deps
        app.state.drain = deps.drain  # begun by service/server.py as uvicorn's shutdown starts
        app.state.scrape_refresh = deps.reconciler.refresh_gauges  # /metrics reads the money gauges afresh
        stop, recorder_stop = asyncio.Event(), asyncio.Event()
        events_task = asyncio.create_task(deps.bus.run())
        recorder_task = asyncio.create_task(deps.recorder.run(recorder_stop))
        background = (
            {
                asyncio.create_task(deps.tracker.run(stop)),
                asyncio.create_task(deps.reconciler.run(stop)),
                asyncio.create_task(deps.delivery_worker.run(stop)),
                asyncio.create_task(
                    JobCensus(r, deps.due, metrics, interval_seconds=settings.metrics_refresh_seconds).run(stop)
                ),
            }
            if settings.tracker_enabled
            else set()
        )
        handover = asyncio.create_task(_hand_over(deps, stop, background))
        try:
            yield
        finally:
            deps.drain.begin()  # under uvicorn, begun at SIGTERM already; here for any other server (and tests)
            await handover
            recorder_stop.set()  # last: submits still in flight during the drain may need it
            await asyncio.wait({recorder_task}, timeout=SHUTDOWN_WAIT_SECONDS)
            await cancel_and_wait(events_task, timeout=SHUTDOWN_WAIT_SECONDS)
            await clients.aclose()
            if redis is None:
                await r.aclose()

    handlers: list[ControllerRouterHandler] = [healthz, readyz, metrics_endpoint, jwks, docs_asset]
    if serve_api:
        # Submits may carry images as data: URIs: their routes take the larger body limit (service/jobs/intake.py
        # then holds each endpoint to its own).
        handlers.append(
            Router("/", route_handlers=list(SUBMIT_CONTROLLERS), request_max_body_size=settings.submit_max_body_bytes)
        )
        handlers += API_CONTROLLERS
        handlers.append(endpoint_openapi)  # fal's per-endpoint document, public (service/apidoc/)
        # Uploads stream their bytes to fal (service/storage/), up to their own limit.
        handlers.append(
            Router("/", route_handlers=list(STORAGE_CONTROLLERS), request_max_body_size=settings.upload_max_bytes)
        )
        handlers.append(proxy_route(settings.proxy_path))  # its refusals; what maps is dispatched (below)
    if upstream.mount is not None:
        handlers.append(upstream.mount)
    if sandbox.upstream.mount is not None:
        handlers.append(sandbox.upstream.mount)
    app = Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        state=State({"admin_token": settings.admin_token.get_secret_value() if settings.admin_token else None}),
        dependencies={
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "metrics": Provide(lambda: metrics, sync_to_thread=False),
            **dependencies(),
            "principal": Provide(provide_principal),
        },
        middleware=[request_context_middleware(metrics)],
        exception_handlers={Exception: exception_handler},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=GatewayOpenAPIConfig(
            title="seedance-gateway",
            version="0.1.0",
            path=DOCS_PATH,
            render_plugins=docs_pages(),
            proxy_path=settings.proxy_path,
        ),
        logging_config=None,
    )
    if serve_api:  # fal's server proxy: mapped requests re-enter before routing (service/proxy.py)
        app.asgi_handler = proxy_dispatch(app.asgi_handler, settings.proxy_path)
    return app


async def _hand_over(deps: Deps, stop: asyncio.Event, background: Collection[asyncio.Task[Any]]) -> None:
    """Once the shutdown begins (``service/drain.py``): stop the background loops, which let their work in flight
    finish for up to ``GATEWAY_TRACKER_SHUTDOWN_GRACE_SECONDS`` and cancel the rest, then give the tracker's and the
    webhook worker's unfinished claims back, due now, so that another replica takes them at once rather than after
    their leases. Only claims this process still holds are given back (``service/lua/lease_release.lua``)."""
    await deps.drain.wait()
    stop.set()
    if not background:
        return
    await asyncio.wait(background, timeout=SHUTDOWN_WAIT_SECONDS)
    try:
        tracker, webhooks = await deps.tracker.hand_back(), await deps.delivery_worker.hand_back()
    except RedisError:
        log.warning("shutdown_handover_failed", exc_info=True)  # the leases bring the work back instead
        return
    log.info(
        "shutdown_handover",
        tracker_finished=tracker.finished,
        tracker_handed_back=tracker.handed_back,
        tracker_not_held=tracker.not_held,
        webhooks_finished=webhooks.finished,
        webhooks_handed_back=webhooks.handed_back,
        webhooks_not_held=webhooks.not_held,
    )
