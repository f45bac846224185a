"""Liveness (``/healthz``), readiness (``/readyz``: Redis answers; it also shows fal's circuits), and ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.metrics import Metrics
from service.upstream.breaker import OPERATIONS, STATE_VALUES

SCRAPE_REFRESH_SECONDS = 1.0
STATE_NAMES = {value: state.value for state, value in STATE_VALUES.items()}


@get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(redis: NamedDependency[Redis], metrics: NamedDependency[Metrics]) -> Response[dict[str, Any]]:
    """200 when Redis answers, else 503. ``upstream`` reports this process's breaker per fal operation and never
    changes the status: fal is shared by every replica, so when it fails every replica's breakers open together, and
    making readiness depend on them would pull every pod out of the Service at once, turning a fal outage into a
    gateway outage (status reads, results, cache hits, cancels, fal's webhooks) for nothing. The breaker already
    answers the calls it refuses in fal's 503 shape, and a pod out of rotation would get no submit to probe fal with."""
    upstream = circuit_states(metrics)
    try:
        await redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:  # not ready; the reason is reported, never raised
        return Response({"ok": [], "failing": {"redis": type(exc).__name__}, "upstream": upstream}, status_code=503)
    return Response({"ok": ["redis"], "failing": {}, "upstream": upstream}, status_code=200)


@get("/metrics", include_in_schema=False, media_type=CONTENT_TYPE_LATEST)
async def metrics_endpoint(metrics: NamedDependency[Metrics], state: State) -> Response[bytes]:
    """The registry, after the gauges that describe shared state are read afresh from Redis (``scrape_refresh`` in
    the app state: the budget gauges). A Redis that does not answer within a second leaves them as last read."""
    refresh: Callable[[], Awaitable[None]] | None = state.get("scrape_refresh")
    if refresh is not None:
        try:
            async with asyncio.timeout(SCRAPE_REFRESH_SECONDS):
                await refresh()
        except (RedisError, TimeoutError):
            metrics.background_errors.labels(loop="scrape_refresh").inc()
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def circuit_states(metrics: Metrics) -> dict[str, str]:
    """Each operation's breaker state as last reported to ``gateway_upstream_circuit_state`` (an open breaker whose
    cool-down is over shows ``open`` until its next call finds it half-open). Operations without a client: omitted."""
    states: dict[str, str] = {}
    for op in OPERATIONS:
        value = metrics.registry.get_sample_value("gateway_upstream_circuit_state", {"op": op})
        if value is not None:
            states[op] = STATE_NAMES.get(int(value), "unknown")
    return states
