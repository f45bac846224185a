"""Liveness (``/healthz``: the process is up) and readiness (``/readyz``: Redis answers), plus ``/metrics``."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.metrics import Metrics


@get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(redis: NamedDependency[Redis]) -> Response[dict[str, Any]]:
    try:
        await redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:  # not ready; the reason is reported, never raised
        return Response({"ok": [], "failing": {"redis": type(exc).__name__}}, status_code=503)
    return Response({"ok": ["redis"], "failing": {}}, status_code=200)


@get("/metrics", include_in_schema=False, media_type=CONTENT_TYPE_LATEST)
async def metrics_endpoint(metrics: NamedDependency[Metrics]) -> Response[bytes]:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
