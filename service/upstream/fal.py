"""Client for fal's queue API (docs/protocol.md §5), behind a breaker per operation; no httpx type or error escapes."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import structlog

from service import timing
from service.domain.endpoints import Endpoint
from service.domain.fal_headers import TIMEOUT_TYPE_HEADER as TIMEOUT_TYPE
from service.domain.webhooks import parse_retry_after
from service.errors import UpstreamError, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from service.metrics import Metrics
from service.upstream import breaker as cb

log = structlog.get_logger(__name__)

# Request headers a tenant may send that fal itself understands at submit (docs/protocol.md §12 item 9).
FORWARDED_SUBMIT_HEADERS = (
    "x-fal-request-timeout",
    "x-fal-queue-priority",
    "x-fal-runner-hint",
    "x-fal-no-retry",
    "x-fal-object-lifecycle-preference",
    "x-fal-store-io",
)
CIRCUIT_OPEN = "fal is failing, so the gateway is not sending {op} calls for now; nothing was sent or charged"


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
    timeout_type: str | None = None  # X-Fal-Request-Timeout-Type: "user" when fal's start deadline ran out

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


class RequestNotSent(UpstreamUnavailable):
    """The request never reached fal (connection refused, DNS, pool exhausted): safe to retry even a submit."""


class UpstreamCircuitOpen(RequestNotSent):
    """503 ``upstream_circuit_open`` with ``Retry-After``: the operation's breaker is open, so nothing was sent."""

    def __init__(self, op: str, retry_after: float) -> None:
        super().__init__(CIRCUIT_OPEN.format(op=op), status_code=503, error_type="upstream_circuit_open")
        self.op = op
        self.retry_after = max(1, math.ceil(retry_after))

    def response_headers(self) -> dict[str, str]:
        return {**super().response_headers(), "Retry-After": str(self.retry_after)}


class FalClient:
    """fal's queue API, each operation behind its own breaker (``breaker.py``), each call counted once however many
    attempts it made. Status, result and cancel are idempotent at fal (cancel is a PUT: a second one changes nothing)
    and are retried with backoff within the read timeout; the paid submit is retried only when it provably never
    reached fal (connect errors, pool timeouts), never once it may have been sent."""

    def __init__(  # noqa: PLR0913 - the breaker thresholds are settings; the clock, sleep and randomness are injectable
        self,
        http: httpx.AsyncClient,
        *,
        metrics: Metrics,
        submit_timeout: float,
        submit_connect_retries: int,
        breaker_failures: int = 5,
        breaker_cooldown_seconds: float = 10.0,
        breaker_probes: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._http, self._metrics = http, metrics
        self._submit_timeout, self._connect_retries = submit_timeout, submit_connect_retries
        self._clock, self._sleep, self._rand = clock, sleep, rand
        self._backoff = cb.Backoff()
        self._prefix = str(http.base_url).rstrip("/")  # absolute URLs: httpx re-parses a relative one twice
        self._default_deadline = sum(filter(None, (http.timeout.connect, http.timeout.read, http.timeout.write)))
        # A retry is made only if its wait ends within the read timeout of the call's start (``Backoff.wait``).
        self._retry_budget = http.timeout.read or self._default_deadline
        policy = cb.BreakerPolicy(breaker_failures, breaker_cooldown_seconds, probes=breaker_probes)
        self._breakers = {
            op: cb.CircuitBreaker(policy, clock=clock, on_transition=partial(self._moved, op)) for op in cb.OPERATIONS
        }
        for op in cb.OPERATIONS:
            metrics.upstream_circuit_state.labels(op=op).set(cb.STATE_VALUES[cb.CircuitState.CLOSED])

    def check_submit_allowed(self) -> None:
        """Raise ``UpstreamCircuitOpen`` if a submit made now would fail fast. Sends nothing, takes no probe slot."""
        if not (breaker := self._breakers["submit"]).allows():
            raise UpstreamCircuitOpen("submit", breaker.retry_in())

    async def submit(
        self, endpoint: Endpoint, payload: dict[str, Any], *, headers: dict[str, str], query: dict[str, str]
    ) -> Submitted:
        request = {
            "content": _encode(payload),
            "headers": {**headers, "Content-Type": "application/json"},
            "params": query,
        }
        with cb.guarded(self._breakers["submit"], "submit", UpstreamCircuitOpen):
            response = await self._submit_until_sent(f"/{endpoint.id}", request)
        body = _json(response)
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str):
            raise UpstreamUnavailable("fal accepted the request but returned no request id", status_code=502)
        position = body.get("queue_position")
        return Submitted(upstream_id=body["request_id"], queue_position=position if isinstance(position, int) else None)

    async def status(self, endpoint: Endpoint, upstream_id: str) -> UpstreamStatus:
        path = f"/{endpoint.app}/requests/{upstream_id}/status"
        response = await self._call("status", "GET", path, params={"logs": "1"})
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
        """A COMPLETED request's result: a model error (e.g. 422) is a result; a 429 is raised (transient)."""
        try:
            response = await self._call("result", "GET", f"/{endpoint.app}/requests/{upstream_id}")
        except UpstreamRejected as exc:
            if exc.status_code == 429:
                raise
            return UpstreamResult(exc.status_code, exc.payload, exc.upstream_error_type, exc.timeout_type)
        return UpstreamResult(response.status_code, _json(response), None)

    async def cancel(self, endpoint: Endpoint, upstream_id: str) -> bool:
        """Ask fal to cancel. True if accepted; False if fal says the request already completed."""
        try:
            await self._call("cancel", "PUT", f"/{endpoint.app}/requests/{upstream_id}/cancel")
        except UpstreamRejected as exc:
            if exc.status_code == 400:
                return False
            raise
        return True

    async def _submit_until_sent(self, path: str, request: dict[str, Any]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._send("submit", "POST", path, self._submit_timeout, **request)
                break
            except RequestNotSent:
                if attempt >= self._connect_retries:
                    raise
                attempt += 1
                self._metrics.upstream_retries.labels(op="submit", reason="not_sent").inc()
        _raise_for_status(response)
        return response

    async def _call(self, op: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An idempotent call through its breaker, repeated after failures (``cb.Backoff.wait`` says when)."""
        with cb.guarded(self._breakers[op], op, UpstreamCircuitOpen):
            started, retry = self._clock(), 0
            deadline: float | None = None  # the first attempt gets the client's own timeouts
            while True:
                retry_after: float | None = None
                try:
                    response = await self._send(op, method, path, deadline, **kwargs)
                    retry_after = parse_retry_after(response.headers.get("retry-after"))  # sent with 429 and 503
                    _raise_for_status(response)
                except UpstreamError as exc:
                    retry += 1
                    reason, elapsed = cb.failure_reason(op, exc), self._clock() - started
                    budget, rand = self._retry_budget, self._rand()
                    wait = self._backoff.wait(retry, elapsed=elapsed, budget=budget, retry_after=retry_after, rand=rand)
                    if reason is None or wait is None:
                        raise
                    self._metrics.upstream_retries.labels(op=op, reason=reason).inc()
                    await self._sleep(wait)
                    deadline = budget - elapsed - wait  # the later attempts share what is left of the budget
                else:
                    return response

    async def _send(self, op: str, method: str, path: str, deadline: float | None, **kwargs: Any) -> httpx.Response:
        """One attempt: fal's answer, whatever its status (``_raise_for_status`` judges it), or the transport error.
        httpx's read timeout bounds each read, not the call: ``deadline`` also bounds the whole attempt."""
        started, outcome = time.perf_counter(), "error"
        try:
            request_timeout = httpx.USE_CLIENT_DEFAULT if deadline is None else self._with_read(deadline)
            query = f"?{httpx.QueryParams(params)}" if (params := kwargs.pop("params", None)) else ""
            url = httpx.URL(f"{self._prefix}{path}{query}")  # every path starts with "/"
            async with asyncio.timeout(deadline or self._default_deadline):
                response = await self._http.request(method, url, timeout=request_timeout, **kwargs)
            outcome = str(response.status_code)
        except httpx.ConnectError as exc:
            raise RequestNotSent(f"Cannot connect to fal: {type(exc).__name__}", status_code=503) from None
        except (httpx.ConnectTimeout, httpx.PoolTimeout):
            raise RequestNotSent("Timed out connecting to fal", status_code=503) from None
        except (httpx.TimeoutException, TimeoutError):
            outcome = "timeout"
            raise UpstreamTimeout("fal did not answer in time") from None
        except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
            # The request was written and the answer cut off: fal may have acted on it. Like a timeout, that is an
            # unknown outcome (a submit is then never retried and reported as such), not "fal is unavailable".
            raise UpstreamTimeout(f"fal's answer was cut off: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"Error talking to fal: {type(exc).__name__}") from None
        finally:
            elapsed = time.perf_counter() - started
            self._metrics.upstream_requests.labels(op=op, outcome=outcome).inc()
            self._metrics.upstream_duration.labels(op=op).observe(elapsed)
            timing.add_upstream(elapsed)
        return response

    def _with_read(self, read: float) -> httpx.Timeout:
        base = self._http.timeout
        return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)

    def _moved(self, op: str, before: cb.CircuitState, after: cb.CircuitState) -> None:
        self._metrics.upstream_circuit_state.labels(op=op).set(cb.STATE_VALUES[after])
        self._metrics.upstream_circuit_transitions.labels(op=op, to=after.value).inc()
        emit = log.warning if after is cb.CircuitState.OPEN else log.info
        emit(
            "upstream_circuit_changed", op=op, before=before, after=after, cooldown=self._breakers[op].cooldown_seconds
        )


def _raise_for_status(response: httpx.Response) -> None:
    code = response.status_code
    if code < 400:
        return
    if code in {401, 403}:
        # The tenant's key is fine; it is the gateway's fal key that fal refused. Never pass a 401 through.
        raise UpstreamUnavailable(
            "fal rejected the gateway's credentials", status_code=502, error_type=cb.AUTH_ERROR_TYPE
        )
    body = _json(response)
    error_type = response.headers.get("x-fal-error-type")
    if isinstance(body, dict):
        body_type = body.get("error_type")
        error_type = body_type if isinstance(body_type, str) else error_type
        if code < 500 or "detail" in body:
            raise UpstreamRejected(code, body, error_type=error_type, timeout_type=response.headers.get(TIMEOUT_TYPE))
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
    """Whether a failed status/result poll is worth repeating later; an open breaker's refusal is (tracker backoff)."""
    if isinstance(exc, UpstreamRejected):
        return exc.status_code in {408, 409, 429} or exc.status_code >= 500
    return True
