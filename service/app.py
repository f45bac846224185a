"""``create_app(settings, ...)``: wiring only. Clients open in the lifespan and close in its ``finally``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.handlers import asgi
from litestar.openapi import OpenAPIConfig
from litestar.types import ControllerRouterHandler, Receive, Scope, Send
from redis.asyncio import Redis

from service.audit import AuditLog
from service.budgets.controller import BudgetAdminController, EstimateController
from service.budgets.ledger import BudgetLedger, ProbeMode
from service.budgets.media import MediaProbe
from service.budgets.reconciler import Reconciler
from service.budgets.usage import BudgetReader
from service.cache.controller import CacheAdminController
from service.cache.images import ImageHasher
from service.cache.service import CacheService
from service.cache.store import ResultCache
from service.config import Settings
from service.domain.pricing import PriceTable
from service.events import EventBus
from service.health import healthz, metrics_endpoint, readyz
from service.http import client_address, exception_handler, request_context_middleware
from service.jobs.controller import QueueController, RunController
from service.jobs.events import JobEvents
from service.jobs.service import JobService
from service.jobs.store import DueSchedule, JobStore
from service.jobs.tracker import JobTracker
from service.metrics import Metrics
from service.netguard import origin_of
from service.redis_client import connect
from service.tenants.admission import Admission
from service.tenants.auth import Authenticator, Principal
from service.tenants.controller import AdminController, SelfServiceController
from service.tenants.store import TenantStore
from service.upstream.fal import FalClient

log = structlog.get_logger(__name__)
SIMULATOR_MOUNT = "/_simulator"


@dataclass(slots=True)
class Deps:
    redis: Redis
    bus: EventBus
    tenants: TenantStore
    auth: Authenticator
    admission: Admission
    audit: AuditLog
    ledger: BudgetLedger
    budgets: BudgetReader
    result_cache: ResultCache
    reconciler: Reconciler
    jobs: JobService
    store: JobStore
    due: DueSchedule
    tracker: JobTracker


@dataclass(frozen=True, slots=True)
class Upstream:
    base_url: str
    transport: httpx.AsyncBaseTransport | None
    mount: ControllerRouterHandler | None
    media_transport: httpx.AsyncBaseTransport | None  # for result media and input images
    media_origin: str  # the one origin whose media may be on a private address: the operator's own upstream


def create_app(  # noqa: PLR0913 - every collaborator a test may want to replace
    settings: Settings,
    *,
    redis: Redis | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
    serve_api: bool = True,
) -> Litestar:
    """Build the gateway. ``redis`` and ``upstream_transport`` are used as given and not closed by the app.

    ``serve_api=False`` builds the worker role: the tracker plus health and metrics, no tenant routes.
    """
    metrics = metrics or Metrics()
    upstream = _upstream(settings, upstream_transport)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        r = redis if redis is not None else connect(settings)
        http = _http_client(settings, upstream)
        # Media is fetched without the fal key: result URLs may point anywhere, and credentials must not follow.
        media = httpx.AsyncClient(transport=upstream.media_transport, follow_redirects=False)
        deps = _build_deps(settings, r, http=http, media=media, upstream=upstream, metrics=metrics, clock=clock)
        app.state.deps = deps
        app.state.redis = r
        stop = asyncio.Event()
        events_task = asyncio.create_task(deps.bus.run())
        tracker_task = asyncio.create_task(deps.tracker.run(stop)) if settings.tracker_enabled else None
        reconcile_task = asyncio.create_task(deps.reconciler.run(stop)) if settings.tracker_enabled else None
        try:
            yield
        finally:
            stop.set()
            background = {t for t in (tracker_task, reconcile_task) if t is not None}
            if background:
                await asyncio.wait(background, timeout=10)
            events_task.cancel()
            with suppress(asyncio.CancelledError):
                await events_task
            await http.aclose()
            await media.aclose()
            if redis is None:
                await r.aclose()

    handlers: list[ControllerRouterHandler] = [healthz, readyz, metrics_endpoint]
    if serve_api:
        handlers += [
            QueueController,
            RunController,
            AdminController,
            SelfServiceController,
            EstimateController,
            BudgetAdminController,
            CacheAdminController,
        ]
    if upstream.mount is not None:
        handlers.append(upstream.mount)
    return Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        state=State({"admin_token": settings.admin_token.get_secret_value() if settings.admin_token else None}),
        dependencies={
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "metrics": Provide(lambda: metrics, sync_to_thread=False),
            "redis": Provide(_provide_redis, sync_to_thread=False),
            "tenants": _from_deps("tenants"),
            "jobs": _from_deps("jobs"),
            "job_store": _from_deps("store"),
            "admission": _from_deps("admission"),
            "audit": _from_deps("audit"),
            "ledger": _from_deps("ledger"),
            "budgets": _from_deps("budgets"),
            "result_cache": _from_deps("result_cache"),
            "principal": Provide(_provide_principal),
        },
        middleware=[request_context_middleware(metrics)],
        exception_handlers={Exception: exception_handler},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="seedance-gateway", version="0.1.0", path="/schema"),
        logging_config=None,
    )


def _build_deps(  # noqa: PLR0913 - the lifespan's resources, all explicit
    settings: Settings,
    r: Redis,
    *,
    http: httpx.AsyncClient,
    media: httpx.AsyncClient,
    upstream: Upstream,
    metrics: Metrics,
    clock: Callable[[], float],
) -> Deps:
    fal = FalClient(
        http,
        metrics=metrics,
        submit_timeout=settings.upstream_submit_timeout_seconds,
        submit_connect_retries=settings.upstream_submit_connect_retries,
    )
    bus = EventBus(r)
    store = JobStore(r, retention_seconds=settings.job_retention_seconds)
    due = DueSchedule(r)
    admission = Admission(r, lease_seconds=settings.concurrency_lease_seconds, clock=clock)
    tenants = TenantStore(r, bus, clock=clock)
    probe = MediaProbe(
        media,
        max_bytes=settings.media_probe_max_bytes,
        timeout=settings.media_probe_timeout_seconds,
        allow_private=settings.media_probe_allow_private,
        trusted_origins={upstream.media_origin},
    )
    ledger = BudgetLedger(
        r,
        prices=PriceTable(
            audio_micros_per_million_tokens=settings.price_audio_micros_per_million_tokens,
            silent_micros_per_million_tokens=settings.price_silent_micros_per_million_tokens,
            fps=settings.video_fps,
        ),
        probe=probe,
        probe_mode=ProbeMode(settings.settle_probe),
        ledger_retention_seconds=settings.ledger_retention_seconds,
        metrics=metrics,
        clock=clock,
    )
    budgets = BudgetReader(r, metrics=metrics, clock=clock)
    result_cache = ResultCache(r)
    hasher = ImageHasher(
        media,
        max_bytes=settings.image_hash_max_bytes,
        timeout=settings.image_hash_timeout_seconds,
        allow_private=settings.image_hash_allow_private,
        trusted_origins={upstream.media_origin},
    )
    cache = CacheService(result_cache, store, hasher=hasher, settings=settings, metrics=metrics, clock=clock)
    jobs = JobService(
        settings=settings,
        store=store,
        due=due,
        fal=fal,
        events=JobEvents(bus),
        admission=admission,
        ledger=ledger,
        budgets=budgets,
        cache=cache,
        metrics=metrics,
        clock=clock,
    )
    tracker = JobTracker(
        settings=settings,
        store=store,
        due=due,
        fal=fal,
        admission=admission,
        ledger=ledger,
        cache=cache,
        metrics=metrics,
        clock=clock,
    )
    reconciler = Reconciler(
        r,
        ledger=ledger,
        reader=budgets,
        jobs=store,
        tenants=tenants,
        interval_seconds=settings.budget_reconcile_interval_seconds,
        extend_seconds=settings.reservation_ttl_seconds,
    )
    return Deps(
        redis=r,
        bus=bus,
        tenants=tenants,
        auth=Authenticator(r, tenants, bus, metrics=metrics, settings=settings, clock=clock),
        admission=admission,
        audit=AuditLog(r, max_entries=settings.audit_max_entries, clock=clock),
        ledger=ledger,
        budgets=budgets,
        result_cache=result_cache,
        reconciler=reconciler,
        jobs=jobs,
        store=store,
        due=due,
        tracker=tracker,
    )


def _http_client(settings: Settings, upstream: Upstream) -> httpx.AsyncClient:
    key = settings.fal_key.get_secret_value() if settings.fal_key else "simulator"
    return httpx.AsyncClient(
        base_url=upstream.base_url,
        transport=upstream.transport,
        headers={"Authorization": f"Key {key}", "User-Agent": "seedance-gateway/0.1"},
        timeout=httpx.Timeout(
            settings.upstream_read_timeout_seconds, connect=settings.upstream_connect_timeout_seconds
        ),
        limits=httpx.Limits(
            max_connections=settings.upstream_max_connections,
            max_keepalive_connections=min(20, settings.upstream_max_connections),
        ),
        follow_redirects=False,
    )


def _upstream(settings: Settings, transport: httpx.AsyncBaseTransport | None) -> Upstream:
    """fal itself, a caller-supplied transport, or (``GATEWAY_SIMULATOR``) the built-in simulator in-process."""
    if transport is not None or not settings.simulator:
        base = settings.upstream_url.rstrip("/")
        return Upstream(base, transport, None, transport, _trusted_origin(base))
    from service.simulator.embedded import embedded_simulator  # noqa: PLC0415 - only the simulator mode needs it

    sim = embedded_simulator(_public_base(settings) + SIMULATOR_MOUNT)

    async def simulator_mount(scope: Scope, receive: Receive, send: Send) -> None:
        await sim.app(scope, receive, send)

    mount = asgi(SIMULATOR_MOUNT, is_mount=True, copy_scope=True, include_in_schema=False)(simulator_mount)
    return Upstream(sim.upstream_url, sim.transport, mount, sim.media_transport, _trusted_origin(sim.public_base))


def _trusted_origin(base_url: str) -> str:
    origin = origin_of(base_url)
    if origin is None:
        raise ValueError(f"not an absolute URL: {base_url!r}")
    return origin


def _public_base(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = "127.0.0.1" if settings.host in {"0.0.0.0", "::", ""} else settings.host  # noqa: S104 - a comparison
    return f"{'https' if settings.tls_enabled else 'http'}://{host}:{settings.port}"


def _provide_redis(state: State) -> Redis:
    redis: Redis = state.redis
    return redis


def _from_deps(name: str) -> Provide:
    """A provider of one collaborator built in the lifespan (handlers declare its type with NamedDependency)."""

    def provide(state: State) -> Any:
        return getattr(state.deps, name)

    return Provide(provide, sync_to_thread=False)


async def _provide_principal(request: Request[Any, Any, Any], settings: NamedDependency[Settings]) -> Principal:
    deps: Deps = request.app.state.deps
    source = client_address(request.scope, settings.trusted_proxy_hops)
    principal = await deps.auth.authenticate(request.headers.get("authorization"), source)
    request.state.tenant_id = principal.tenant_id
    return principal
