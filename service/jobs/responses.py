"""How jobs are rendered as fal HTTP answers: result bodies and statuses, and the headers every job answer carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Response

from service.domain.fal_headers import TIMEOUT_TYPE_HEADER
from service.domain.jobs import Job, Outcome
from service.errors import BadRequest

_CACHE_HEADER = {"hit": "hit", "follower": "merged", "leader": "miss", "bypass": "bypass"}
# On a 504 whose re-send would start a second, separately paid job (a submit fal may have accepted, a /run still
# running): both official clients never re-send a 504 with a timeout type (docs/protocol.md §6.5).
NOT_RETRIED = {TIMEOUT_TYPE_HEADER: "user"}


@dataclass(frozen=True, slots=True)
class ResultResponse:
    status_code: int
    body: Any
    headers: dict[str, str]


def result_response(job: Job) -> ResultResponse:
    """What ``GET .../requests/{id}`` (and ``/run``) answers for a job."""
    if not job.done:
        # [UNCERTAIN] fal's answer before completion is not documented; 400 with a request-error body is the most
        # plausible, and neither official client ever asks early (docs/protocol.md, "Choices").
        error = BadRequest("Request is still in progress", error_type="request_in_progress")
        return ResultResponse(error.status_code, error.body(), error.response_headers())
    if job.outcome is Outcome.OK:
        return ResultResponse(200, job.result, {})
    headers = {"X-Fal-Error-Type": job.error_type} if job.error_type and job.error_type != "validation_error" else {}
    if job.error_timeout_type:  # fal's start deadline ran out: its clients must not re-send it either
        headers[TIMEOUT_TYPE_HEADER] = job.error_timeout_type
    body = job.error_body if job.error_body is not None else {"detail": job.error, "error_type": job.error_type}
    return ResultResponse(job.error_status or 500, body, headers)


def json_response(body: Any, status: int, request_id: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=body,
        status_code=status,
        media_type="application/json",
        headers={"x-fal-request-id": request_id, **(headers or {})},
    )


def cost_headers(job: Job) -> dict[str, str]:
    """The estimate reserved for an accepted request (micro-USD; a sandbox job's is 0: nothing is reserved or
    charged), and how the cache answered it."""
    cost = 0 if job.sandbox else job.estimate_micros
    headers = {"x-gateway-cost-micros": str(cost)} if cost is not None else {}
    return headers | cache_headers(job)


def cache_headers(job: Job) -> dict[str, str]:
    if job.cache_role is None or job.cache_key is None:
        return {}
    return {"x-gateway-cache": _CACHE_HEADER[job.cache_role], "x-gateway-cache-key": job.cache_key}
