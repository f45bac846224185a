"""Client for fal's queue API (docs/protocol.md §5). No httpx type or error escapes this module.

Retry policy: status, result and cancel are idempotent reads/requests and the tracker re-polls them on its own
schedule, so they are not retried here. The paid submit is retried only when the request provably never reached
fal (connect errors, pool timeouts); once bytes may have been sent, a failure is reported, never retried.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from service.domain.endpoints import Endpoint
from service.errors import UpstreamError, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from service.metrics import Metrics

# Request headers a tenant may send that fal itself understands at submit (docs/protocol.md §12 item 9).
FORWARDED_SUBMIT_HEADERS = (
    "x-fal-request-timeout",
    "x-fal-queue-priority",
    "x-fal-runner-hint",
    "x-fal-no-retry",
    "x-fal-object-lifecycle-preference",
    "x-fal-store-io",
)


@dataclass(frozen=True, slots=True)
class Submitted:
    upstream_id: str
    queue_position: int | None


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    status: str
    queue_position: int | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    inference_time: float | None = None
    error: str | None = None
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamResult:
    """A completed request's result: the model output (2xx) or the error status and body fal returned."""

    status_code: int
    body: Any
    error_type: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


class RequestNotSent(UpstreamUnavailable):
    """The request never reached fal (connection refused, DNS, pool exhausted): safe to retry even a submit."""


class FalClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        metrics: Metrics,
        submit_timeout: float,
        submit_connect_retries: int,
    ) -> None:
        self._http = http
        self._metrics = metrics
        self._submit_timeout = submit_timeout
        self._connect_retries = submit_connect_retries
        timeout = http.timeout
        self._default_deadline = sum(t for t in (timeout.connect, timeout.read, timeout.write) if t is not None)

    async def submit(
        self, endpoint: Endpoint, payload: dict[str, Any], *, headers: dict[str, str], query: dict[str, str]
    ) -> Submitted:
        attempt = 0
        while True:
            try:
                response = await self._send(
                    "submit",
                    "POST",
                    f"/{endpoint.id}",
                    content=_encode(payload),
                    headers={**headers, "Content-Type": "application/json"},
                    params=query,
                    timeout=self._submit_timeout,
                )
                break
            except RequestNotSent:
                if attempt >= self._connect_retries:
                    raise
                attempt += 1
        body = _json(response)
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str):
            raise UpstreamUnavailable("fal accepted the request but returned no request id", status_code=502)
        position = body.get("queue_position")
        return Submitted(upstream_id=body["request_id"], queue_position=position if isinstance(position, int) else None)

    async def status(self, endpoint: Endpoint, upstream_id: str) -> UpstreamStatus:
        response = await self._send(
            "status", "GET", f"/{endpoint.app}/requests/{upstream_id}/status", params={"logs": "1"}
        )
        body = _json(response)
        if not isinstance(body, dict) or body.get("status") not in {"IN_QUEUE", "IN_PROGRESS", "COMPLETED"}:
            raise UpstreamUnavailable("fal returned an unrecognised status body", status_code=502)
        metrics = body.get("metrics") if isinstance(body.get("metrics"), dict) else {}
        inference_time = metrics.get("inference_time") if metrics else None
        logs = body.get("logs")
        return UpstreamStatus(
            status=body["status"],
            queue_position=body.get("queue_position") if isinstance(body.get("queue_position"), int) else None,
            logs=[entry for entry in logs if isinstance(entry, dict)] if isinstance(logs, list) else [],
            inference_time=float(inference_time) if isinstance(inference_time, (int, float)) else None,
            error=body.get("error") if isinstance(body.get("error"), str) else None,
            error_type=body.get("error_type") if isinstance(body.get("error_type"), str) else None,
        )

    async def result(self, endpoint: Endpoint, upstream_id: str) -> UpstreamResult:
        """Fetch the result of a COMPLETED request. A model error (e.g. 422) is a result, not an exception."""
        try:
            response = await self._send("result", "GET", f"/{endpoint.app}/requests/{upstream_id}")
        except UpstreamRejected as exc:
            return UpstreamResult(exc.status_code, exc.payload, exc.upstream_error_type)
        return UpstreamResult(response.status_code, _json(response), None)

    async def cancel(self, endpoint: Endpoint, upstream_id: str) -> bool:
        """Ask fal to cancel. True if accepted; False if fal says the request already completed."""
        try:
            await self._send("cancel", "PUT", f"/{endpoint.app}/requests/{upstream_id}/cancel")
        except UpstreamRejected as exc:
            if exc.status_code == 400:
                return False
            raise
        return True

    async def _send(
        self,
        op: str,
        method: str,
        path: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the per-call deadline is applied inside
        **kwargs: Any,
    ) -> httpx.Response:
        started = time.perf_counter()
        outcome = "error"
        # httpx's read timeout bounds each read, not the call; the whole call also gets a hard deadline.
        deadline = timeout if timeout is not None else self._default_deadline
        try:
            request_timeout = httpx.USE_CLIENT_DEFAULT if timeout is None else self._with_read(timeout)
            async with asyncio.timeout(deadline):
                response = await self._http.request(method, path, timeout=request_timeout, **kwargs)
            outcome = str(response.status_code)
            _raise_for_status(response)
        except httpx.ConnectError as exc:
            raise RequestNotSent(f"Cannot connect to fal: {type(exc).__name__}", status_code=503) from None
        except (httpx.ConnectTimeout, httpx.PoolTimeout):
            raise RequestNotSent("Timed out connecting to fal", status_code=503) from None
        except (httpx.TimeoutException, TimeoutError):
            outcome = "timeout"
            raise UpstreamTimeout("fal did not answer in time") from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"Error talking to fal: {type(exc).__name__}") from None
        finally:
            self._metrics.upstream_requests.labels(op=op, outcome=outcome).inc()
            self._metrics.upstream_duration.labels(op=op).observe(time.perf_counter() - started)
        return response

    def _with_read(self, read: float) -> httpx.Timeout:
        base = self._http.timeout
        return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)


def _raise_for_status(response: httpx.Response) -> None:
    code = response.status_code
    if code < 400:
        return
    if code in {401, 403}:
        # The tenant's key is fine; it is the gateway's fal key that fal refused. Never pass a 401 through.
        raise UpstreamUnavailable(
            "fal rejected the gateway's credentials", status_code=502, error_type="upstream_auth_error"
        )
    body = _json(response)
    error_type = response.headers.get("x-fal-error-type")
    if isinstance(body, dict):
        body_type = body.get("error_type")
        error_type = body_type if isinstance(body_type, str) else error_type
        if code < 500 or "detail" in body:
            raise UpstreamRejected(code, body, error_type=error_type)
    if code >= 500:
        raise UpstreamUnavailable(f"fal returned HTTP {code}", status_code=502 if code != 503 else 503)
    raise UpstreamRejected(code, {"detail": f"fal returned HTTP {code}"}, error_type=error_type)


def _encode(payload: dict[str, Any]) -> bytes:
    # ensure_ascii: a prompt may legally hold a lone surrogate escape ("\\ud800") that UTF-8 cannot encode; escaped,
    # it reaches fal exactly as the client sent it instead of crashing the encoder.
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode()


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def is_transient(exc: UpstreamError) -> bool:
    """Whether a failed status/result poll is worth repeating later (vs a definitive answer from fal)."""
    if isinstance(exc, UpstreamRejected):
        return exc.status_code in {408, 409, 429} or exc.status_code >= 500
    return True
