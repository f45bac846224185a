"""One delivery attempt: sign the body both ways, POST it through the outbound guard, and classify the answer.

Headers (docs/webhooks.md): fal's ``X-Fal-Webhook-Request-Id`` / ``-User-Id`` (the tenant) / ``-Timestamp`` /
``-Signature`` (hex Ed25519), and Standard Webhooks' ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature``
(``v1,<base64 HMAC-SHA256>`` per live tenant secret). Every attempt of one delivery carries the same ids and a fresh
timestamp, so receivers can deduplicate and still check freshness.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from service.domain.webhooks import Attempt, AttemptResult, classify, fal_signed_content, standard_signatures
from service.http import SANDBOX_HEADER
from service.netguard import GuardedClient, HostUnresolved, UnsafeDestination
from service.upstream.selection import USER_AGENT
from service.webhooks.secrets import TenantSecrets
from service.webhooks.signing import SigningKeys
from service.webhooks.store import Delivery


@dataclass(frozen=True, slots=True)
class Sent:
    attempt: Attempt
    retry_after: str | None  # the receiver's Retry-After, as it sent it


class WebhookSender:
    def __init__(  # noqa: PLR0913 - collaborators and bounds, all explicit
        self,
        client: GuardedClient,  # every receiver URL is the tenant's: only through the outbound guard
        *,
        signing: SigningKeys,
        secrets: TenantSecrets,
        timeout_seconds: float,
        max_response_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._signing = signing
        self._secrets = secrets
        self._timeout = timeout_seconds
        self._max_response = max_response_bytes
        self._clock = clock

    async def headers(self, delivery: Delivery, timestamp: int) -> dict[str, str]:
        body = delivery.body.encode()
        await self._signing.ready()
        secrets = await self._secrets.signing_secrets(delivery.tenant_id)
        signed = fal_signed_content(delivery.request_id, delivery.tenant_id, timestamp, body)
        marks = {SANDBOX_HEADER: "true"} if delivery.sandbox else {}
        return {
            **marks,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Fal-Webhook-Request-Id": delivery.request_id,
            "X-Fal-Webhook-User-Id": delivery.tenant_id,
            "X-Fal-Webhook-Timestamp": str(timestamp),
            "X-Fal-Webhook-Signature": self._signing.sign(signed),
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_signatures(secrets, delivery.id, timestamp, body),
        }

    async def send(self, delivery: Delivery) -> Sent:
        """One attempt. Never raises for anything the receiver or the network does: that is the attempt's result."""
        now = self._clock()
        headers = await self.headers(delivery, int(now))
        started = time.perf_counter()
        status: int | None = None
        retry_after: str | None = None
        error: str | None = None
        refused = False
        try:
            async with asyncio.timeout(self._timeout):
                status, retry_after = await self._post(delivery, headers)
        except HostUnresolved:
            error = "host does not resolve"
        except UnsafeDestination as exc:
            error, refused = f"destination refused: {exc}", True
        except TimeoutError:
            error = f"no answer within {self._timeout:g} s"
        except httpx.HTTPError as exc:
            # The class name only: messages can quote the URL, whose query may carry the receiver's own token.
            error = f"transport error ({type(exc).__name__})"
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        result = AttemptResult.FINAL if refused else classify(status)
        if status is not None and result is not AttemptResult.DELIVERED:
            error = f"HTTP {status}"
        return Sent(Attempt(at=now, status_code=status, latency_ms=latency_ms, error=error, result=result), retry_after)

    async def _post(self, delivery: Delivery, headers: dict[str, str]) -> tuple[int, str | None]:
        request = self._client.build_request("POST", delivery.url, content=delivery.body.encode(), headers=headers)
        response = await self._client.send(request, stream=True, follow_redirects=False, auth=None)
        try:
            read = 0
            async for chunk in response.aiter_raw():  # read a small prefix only: the answer is not used
                read += len(chunk)
                if read >= self._max_response:
                    break
        except httpx.StreamConsumed:  # an in-process transport answered with a body already read: nothing to read
            pass
        finally:
            await response.aclose()
        return response.status_code, response.headers.get("retry-after")
