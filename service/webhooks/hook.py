"""The completion hook that queues a job's webhook: the delivery is decided with the job's completion, atomically.

Its outbox entry (the whole delivery: id, target, exact body) is written by the completion's transition script in
the job's slot, so no crash can complete a job and lose its callback; dispatching it creates the delivery record and
makes it due, idempotently, until the completion path clears the entry (docs/architecture.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from service.domain.jobs import Job
from service.domain.webhooks import delivery_id, encode_payload, fal_payload
from service.webhooks.store import Delivery, DeliveryStore


class WebhookHook:
    name = "webhook"

    def __init__(self, store: DeliveryStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def outbox(self, job: Job) -> str | None:
        if not job.webhook_url:
            return None
        return json.dumps(
            {
                "id": delivery_id(job.request_id),
                "tenant_id": job.tenant_id,
                "request_id": job.request_id,
                "url": job.webhook_url,
                "body": encode_payload(fal_payload(job)).decode(),
                "created_at": job.completed_at or self._clock(),
                "sandbox": job.sandbox,
                "tenant_uid": job.tenant_uid,
            }
        )

    async def dispatch(self, job: Job, payload: str) -> None:  # noqa: ARG002 - the hook protocol; the payload says all
        spec = json.loads(payload)
        await self._store.enqueue(
            Delivery(
                id=spec["id"],
                tenant_id=spec["tenant_id"],
                request_id=spec["request_id"],
                url=spec["url"],
                body=spec["body"],
                created_at=spec["created_at"],
                next_at=spec["created_at"],
                sandbox=bool(spec.get("sandbox", False)),
                tenant_uid=spec.get("tenant_uid"),
            )
        )
