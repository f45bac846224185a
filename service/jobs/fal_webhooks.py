"""fal's own webhooks, inbound: the fast path of tracking (``GATEWAY_FAL_WEBHOOKS``, docs/webhooks.md).

With it on, every submit asks fal to call ``<GATEWAY_PUBLIC_URL>/fal-webhooks/<gateway request id>`` when the job
ends. A call is accepted only with a valid Ed25519 signature from fal's JWKS, a timestamp within
``GATEWAY_FAL_WEBHOOK_TOLERANCE_SECONDS``, a signature never seen before, and the upstream id of that very job; the
job is then tracked at once (status and result fetched, completed through the completion path). Anything else is
refused and changes nothing. Polling stays as the fallback at ``GATEWAY_FAL_WEBHOOK_POLL_SECONDS``, so a lost
webhook only delays a completion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from redis.asyncio import Redis

from service import keys
from service.config import Settings
from service.errors import Forbidden, NotFound, Unauthorized
from service.jobs.store import JobStore
from service.jobs.tracker import JobTracker
from service.metrics import Metrics
from service.webhooks.falverify import FalJwks, WebhookRefused, replay_key

log = structlog.get_logger(__name__)
RECEIVER_PATH = "/fal-webhooks"


def fal_webhooks_on(settings: Settings) -> bool:
    """Whether submits ask fal to call back (it needs the public URL fal can reach the gateway at)."""
    return settings.fal_webhooks and bool(settings.public_url)


def receiver_url(settings: Settings, request_id: str) -> str | None:
    """The ``fal_webhook`` a submit passes upstream, or None when fal webhooks are off."""
    if not fal_webhooks_on(settings) or not settings.public_url:
        return None
    return f"{settings.public_url.rstrip('/')}{RECEIVER_PATH}/{request_id}"


class FalWebhookReceiver:
    def __init__(  # noqa: PLR0913 - collaborators and bounds, all explicit
        self,
        *,
        redis: Redis,
        jwks: FalJwks,
        store: JobStore,
        tracker: JobTracker,
        metrics: Metrics,
        tolerance_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._jwks = jwks
        self._store = store
        self._tracker = tracker
        self._metrics = metrics
        self._tolerance = tolerance_seconds
        self._clock = clock

    async def receive(self, request_id: str, headers: dict[str, str], body: bytes) -> None:
        """Accept one webhook from fal for the gateway's job ``request_id``, or raise (and change nothing)."""
        try:
            webhook = await self._jwks.verify(headers, body, now=self._clock(), tolerance_seconds=self._tolerance)
        except WebhookRefused as exc:
            self._refused(exc.reason)
            raise Unauthorized(f"fal webhook refused: {exc.reason}", error_type="webhook_refused") from None
        job = await self._store.get(request_id)
        if job is None:
            self._refused("unknown_request")
            raise NotFound("Request not found", error_type="request_not_found")
        if job.upstream_id != webhook.request_id:
            self._refused("request_mismatch")
            raise Forbidden("This webhook is for another request", error_type="webhook_refused")
        digest = replay_key(webhook)
        ttl = int(2 * self._tolerance) + 1
        if not await self._redis.set(keys.fal_webhook_seen(digest), request_id, nx=True, ex=ttl):
            self._refused("replay")
            raise Forbidden("This webhook was already received", error_type="webhook_replayed")
        self._metrics.fal_webhooks.labels(result="accepted").inc()
        log.info("fal_webhook_accepted", request_id=request_id, done=job.done)
        if not job.done:
            await self._tracker.process(request_id)

    def _refused(self, reason: str) -> None:
        self._metrics.fal_webhooks.labels(result=reason).inc()
        log.warning("fal_webhook_refused", reason=reason)


class FalWebhookController(Controller):
    path = RECEIVER_PATH
    tags = ["webhooks"]  # noqa: RUF012 - Litestar reads this class attribute
    include_in_schema = False

    @post("/{request_id:str}", status_code=200)
    async def receive(
        self,
        request: Request[Any, Any, Any],
        request_id: FromPath[str],
        fal_webhooks: NamedDependency[FalWebhookReceiver],
    ) -> Response[dict[str, str]]:
        await fal_webhooks.receive(request_id, dict(request.headers), await request.body())
        return Response({"status": "accepted"}, status_code=200)
