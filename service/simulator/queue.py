"""fal's queue API as the simulator serves it: submit, status, result, cancel (docs/protocol.md §1.3, §5, §6)."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from litestar import Request, Response
from litestar.enums import MediaType

from service.domain.endpoints import find_endpoint
from service.domain.fal_headers import START_TIMEOUT_HEADER, TIMEOUT_TYPE_HEADER, InvalidStartTimeout, start_timeout
from service.simulator.faults import CallOp
from service.simulator.jobs import Failure, Job, Phase, Success, output_body
from service.simulator.state import SimulatorState
from service.simulator.webhooks import url_problem

REQUEST_ID_HEADER = "x-fal-request-id"
ERROR_TYPE_HEADER = "x-fal-error-type"

UNAUTHORIZED = {"detail": "Unauthorized", "error_type": "unauthorized"}
APP_NOT_FOUND = {"detail": "Application not found", "error_type": "not_found"}
REQUEST_NOT_FOUND = {"detail": "Request not found", "error_type": "not_found"}
# [UNCERTAIN] neither official client fetches a result early, so fal's answer was never captured
# (docs/protocol.md §5.4); a 400 request error is the most plausible shape.
NOT_READY = {"detail": "Request is still in progress", "error_type": "request_in_progress"}

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})

AnyRequest = Request[Any, Any, Any]


def fal_json(
    body: Any, status: int, request_id: str | None = None, extra: dict[str, str] | None = None
) -> Response[Any]:
    """A JSON response with the headers fal's clients read: the request id, and the error type on request errors."""
    headers: dict[str, str] = dict(extra or {})
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    if status >= 400 and isinstance(body, dict) and isinstance(body.get("error_type"), str):
        headers[ERROR_TYPE_HEADER] = body["error_type"]
    return Response(content=body, status_code=status, headers=headers, media_type=MediaType.JSON)


async def submit(sim: SimulatorState, request: AnyRequest, endpoint_id: str) -> Response[Any]:
    endpoint = find_endpoint(endpoint_id)
    sim.record_call("submit", None)
    raw = await request.body()
    base = _base_url(request)
    webhook_url = request.query_params.get("fal_webhook")
    try:
        deadline, bad_deadline = start_timeout(request.headers.get(START_TIMEOUT_HEADER)), None
    except InvalidStartTimeout as exc:
        deadline, bad_deadline = None, str(exc)

    def act() -> Response[Any]:
        if endpoint is None:
            return fal_json(APP_NOT_FOUND, 404)
        if bad_deadline is not None:  # [UNCERTAIN] fal's table names bad_request for an invalid timeout header
            return fal_json({"detail": bad_deadline, "error_type": "bad_request"}, 400)
        problem = None if webhook_url is None else url_problem(webhook_url)
        if problem is not None:
            # [UNCERTAIN] fal's answer to a bad webhook URL was never captured; FastAPI's 422 for a query parameter.
            error = {"type": "url_parsing", "loc": ["query", "fal_webhook"], "msg": problem, "input": webhook_url}
            return fal_json({"detail": [error]}, 422)
        job = sim.submit(endpoint, raw, webhook_url=webhook_url, base_url=base, start_timeout=deadline)
        # Always IN_QUEUE, even with queue_seconds=0: that is what the docs promise a submit returns.
        body: dict[str, Any] = {
            "status": Phase.IN_QUEUE.value,
            "request_id": job.id,
            **_urls(base, job),
            "logs": None,
            "metrics": {},
            "queue_position": sim.queue_position(job, sim.clock()),
        }
        return fal_json(body, 200, job.id)

    return await _guarded(sim, request, "submit", _Target(endpoint_id.strip("/"), None), act)


async def status(sim: SimulatorState, request: AnyRequest, app: str, request_id: str) -> Response[Any]:
    job = sim.find(app, request_id)
    sim.record_call("status", job)
    with_logs = (request.query_params.get("logs") or "").lower() in _TRUE_WORDS
    base = _base_url(request)

    def act() -> Response[Any]:
        if job is None:
            return fal_json(REQUEST_NOT_FOUND, 404)
        now = sim.clock()
        body = status_body(sim, job, now, base, with_logs=with_logs)
        return fal_json(body, 200 if body["status"] == Phase.COMPLETED else 202, job.id)

    return await _guarded(sim, request, "status", _target(job), act)


async def result(sim: SimulatorState, request: AnyRequest, app: str, request_id: str) -> Response[Any]:
    job = sim.find(app, request_id)
    sim.record_call("result", job)
    base = _base_url(request)

    def act() -> Response[Any]:
        if job is None:
            return fal_json(REQUEST_NOT_FOUND, 404)
        outcome = job.result(sim.clock())
        if outcome is None:
            return fal_json(NOT_READY, 400, job.id)
        if isinstance(outcome, Failure):
            extra = {TIMEOUT_TYPE_HEADER: outcome.timeout_type} if outcome.timeout_type else None
            return fal_json(outcome.body, outcome.status, job.id, extra)
        return fal_json(output_body(job, outcome, base), 200, job.id)

    return await _guarded(sim, request, "result", _target(job), act)


async def cancel(sim: SimulatorState, request: AnyRequest, app: str, request_id: str) -> Response[Any]:
    job = sim.find(app, request_id)
    sim.record_call("cancel", job)

    def act() -> Response[Any]:
        if job is None:
            return fal_json(REQUEST_NOT_FOUND, 404)
        if job.cancel(sim.clock()):
            return fal_json({"status": "CANCELLATION_REQUESTED"}, 202, job.id)
        return fal_json({"status": "ALREADY_COMPLETED"}, 400, job.id)

    return await _guarded(sim, request, "cancel", _target(job), act)


def status_body(sim: SimulatorState, job: Job, now: float, base: str, *, with_logs: bool) -> dict[str, Any]:
    phase = job.phase(now)
    logs = [_log_entry(sim, line.message, line.at) for line in job.logs(now)] if with_logs else None
    body: dict[str, Any] = {
        "status": phase.value,
        "request_id": job.id,
        **_urls(base, job),
        "logs": logs,
        "metrics": {},
    }
    if phase is Phase.IN_QUEUE:
        body["queue_position"] = sim.queue_position(job, now)
    outcome = job.result(now)
    if isinstance(outcome, Success):
        body["metrics"] = {"inference_time": job.processing_seconds}
    elif isinstance(outcome, Failure):
        # Failed runs keep `metrics` empty, as in fal's documented failed-status example (docs/protocol.md §5.2).
        body["error"] = outcome.error
        body["error_type"] = outcome.error_type
    return body


def is_authorized(fal_key: str | None, header: str | None) -> bool:
    """With a configured key only that exact key passes; without one, any ``Key``/``Bearer`` credential does."""
    if header is None:
        return False
    if fal_key is not None:
        return hmac.compare_digest(header.encode(), f"Key {fal_key}".encode())
    scheme, _, token = header.partition(" ")
    return scheme in {"Key", "Bearer"} and bool(token.strip())


class _Target(NamedTuple):
    """What a call is about: faults match on ``endpoint_id``, early answers carry ``request_id``."""

    endpoint_id: str | None
    request_id: str | None


async def _guarded(
    sim: SimulatorState, request: AnyRequest, op: CallOp, target: _Target, act: Callable[[], Response[Any]]
) -> Response[Any]:
    """Run one queue call through authentication and the armed faults."""
    if not is_authorized(sim.config.fal_key, request.headers.get("authorization")):
        return fal_json(UNAUTHORIZED, 401, target.request_id)
    rule = sim.faults.take(op, target.endpoint_id)
    if rule is not None and rule.kind == "http_error":
        return fal_json(rule.error_body(), rule.status, target.request_id)
    response = act()
    if rule is not None:
        # timeout/slow: the call takes effect first and only the answer is late, so a submit whose caller gave up
        # still creates a job, as on real fal.
        await asyncio.sleep(rule.delay_seconds)
    return response


def _target(job: Job | None) -> _Target:
    return _Target(None, None) if job is None else _Target(job.endpoint.id, job.id)


def _base_url(request: AnyRequest) -> str:
    return str(request.base_url).rstrip("/")


def _urls(base: str, job: Job) -> dict[str, str]:
    # Status, result and cancel URLs use only owner/alias, never the full endpoint id (docs/protocol.md §1.3).
    response_url = f"{base}/{job.endpoint.app}/requests/{job.id}"
    return {
        "response_url": response_url,
        "status_url": f"{response_url}/status",
        "cancel_url": f"{response_url}/cancel",
    }


def _log_entry(sim: SimulatorState, message: str, at: float) -> dict[str, str]:
    stamp = datetime.fromtimestamp(sim.wall_time(at), tz=UTC).isoformat(timespec="milliseconds")
    return {"message": message, "level": "INFO", "source": "USER", "timestamp": stamp.replace("+00:00", "Z")}
