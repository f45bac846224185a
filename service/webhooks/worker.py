"""The delivery loop: claims due webhook deliveries as leases, attempts each, and retries on the schedule.

Every replica (or a separate worker) runs one. A delivery claimed by a replica that dies becomes due again when its
lease (``GATEWAY_WEBHOOK_LEASE_SECONDS``) runs out; one that shuts down hands the attempts it cut short back at
once (:meth:`DeliveryWorker.hand_back`). Network errors, timeouts, 408, 425, 429 and 5xx are retried
after ``GATEWAY_WEBHOOK_RETRY_SCHEDULE`` (jittered; a longer ``Retry-After`` wins, capped); any other answer is
final. After the last attempt the delivery is dead-lettered (state ``failed``) and can be replayed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import structlog

from service.background import Survivor
from service.domain.webhooks import AttemptResult, DeliveryState, next_delay, parse_retry_after
from service.metrics import Metrics
from service.schedule import DEFAULT_GRACE_SECONDS, Handover, LeaseWorker
from service.webhooks.sender import WebhookSender
from service.webhooks.store import DeliveryStore

log = structlog.get_logger(__name__)


class DeliveryWorker:
    def __init__(  # noqa: PLR0913 - collaborators and knobs, all explicit
        self,
        *,
        store: DeliveryStore,
        sender: WebhookSender,
        metrics: Metrics,
        schedule: Sequence[float],
        retry_after_cap: float,
        concurrency: int,
        lease_seconds: float,
        tick_seconds: float,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._sender = sender
        self._metrics = metrics
        self._schedule = tuple(schedule)
        self._retry_after_cap = retry_after_cap
        self._clock = clock
        self._survivor = Survivor("webhooks", metrics)
        self._loop = LeaseWorker(
            store.due,
            self.attempt,
            concurrency=concurrency,
            batch=concurrency,
            lease_seconds=lease_seconds,
            tick_seconds=tick_seconds,
            on_error=self._survivor.survived,
            between=self._observe_queue,
            grace_seconds=grace_seconds,
            clock=clock,
        )

    async def run(self, stop: asyncio.Event) -> None:
        await self._loop.run(stop)

    async def claim_and_start(self) -> int:
        return await self._loop.claim_and_start()

    async def drain(self) -> None:
        await self._loop.drain()

    async def hand_back(self) -> Handover:
        """After :meth:`run`: give the deliveries whose attempt the stop cut short back, due now (see
        ``LeaseWorker.hand_back``). Such an attempt may have reached its receiver: it is sent again, with the same
        ``webhook-id``, as after any attempt whose answer was lost."""
        return await self._loop.hand_back()

    async def attempt(self, delivery_id: str) -> None:
        """One attempt of one delivery. Never raises: a failure here leaves the lease to bring it back."""
        with structlog.contextvars.bound_contextvars(delivery_id=delivery_id):
            try:
                await self._attempt(delivery_id)
            except Exception:  # noqa: BLE001 - one delivery's failure must not stop the others; logged and counted
                self._survivor.survived("webhook_attempt_failed")

    async def _attempt(self, delivery_id: str) -> None:
        delivery = await self._store.get(delivery_id)
        if delivery is None or delivery.state is not DeliveryState.PENDING:
            await self._store.due.finish(delivery_id)
            return
        sent = await self._sender.send(delivery)
        attempt = sent.attempt
        self._metrics.webhook_attempts.labels(result=_attempt_label(attempt.status_code, attempt.result)).inc()
        self._metrics.webhook_attempt_seconds.observe(attempt.latency_ms / 1000)
        made = delivery.attempts + 1
        next_at: float | None = None
        if attempt.result is AttemptResult.DELIVERED:
            state = DeliveryState.DELIVERED
        elif (
            attempt.result is AttemptResult.RETRY
            and (
                delay := next_delay(
                    made,
                    self._schedule,
                    retry_after=parse_retry_after(sent.retry_after),
                    retry_after_cap=self._retry_after_cap,
                )
            )
            is not None
        ):
            state, next_at = DeliveryState.PENDING, attempt.at + delay
        else:
            state = DeliveryState.FAILED
        await self._store.record(delivery, attempt, state=state, next_at=next_at)
        if state is DeliveryState.DELIVERED:
            self._metrics.webhook_deliveries.labels(outcome="delivered").inc()
            self._metrics.webhook_delivery_seconds.observe(max(0.0, attempt.at - delivery.created_at))
            log.info("webhook_delivered", attempts=made, tenant_id=delivery.tenant_id, request_id=delivery.request_id)
        elif state is DeliveryState.FAILED:
            self._metrics.webhook_deliveries.labels(outcome="failed").inc()
            self._metrics.webhook_dead_letters.inc()
            log.warning(
                "webhook_dead_lettered",
                attempts=made,
                error=attempt.error,
                tenant_id=delivery.tenant_id,
                request_id=delivery.request_id,
            )
        else:
            log.info("webhook_retry_scheduled", attempts=made, error=attempt.error, next_at=next_at)

    async def _observe_queue(self) -> None:
        self._metrics.webhook_queue_depth.set(await self._store.pending_count())
        oldest = await self._store.due.oldest_ms()
        age = 0.0 if oldest is None else max(0.0, self._clock() - oldest / 1000)
        self._metrics.webhook_oldest_pending_seconds.set(age)


def _attempt_label(status: int | None, result: AttemptResult) -> str:
    if status is None:
        return "refused" if result is AttemptResult.FINAL else "network_error"
    return f"{status // 100}xx"
