"""fal's queue and run APIs under ``/queue`` and ``/run`` (fal-protocol.md §1.3, §4, §5)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from service.cache.service import directive_of
from service.config import Settings
from service.domain.endpoints import RequestPath, app_of, parse_request_path
from service.domain.jobs import Job, JobMode, JobUrls, job_urls, status_payload, submit_payload
from service.errors import GatewayError, NotFound
from service.jobs.service import JobService, result_response
from service.tenants.auth import Principal
from service.upstream.fal import FORWARDED_SUBMIT_HEADERS

AnyRequest = Request[Any, Any, Any]


class QueueController(Controller):
    """Submit is ``POST /queue/{endpoint_id}``; the request URLs use only ``owner/alias``. Both live under one
    ``{fal_path:path}`` per method, because a path-typed route would otherwise shadow the others."""

    path = "/queue"
    tags = ["queue"]  # noqa: RUF012 - Litestar reads this class attribute

    @post("/{fal_path:path}", status_code=200)
    async def submit(
        self,
        request: AnyRequest,
        fal_path: FromPath[str],
        jobs: NamedDependency[JobService],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        fal_webhook: FromQuery[str | None] = None,
    ) -> Response[Any]:
        job = await _admit_and_submit(request, fal_path, jobs, principal, JobMode.QUEUE, fal_webhook)
        urls = job_urls(_base_url(request, settings), app_of(job.endpoint_id), job.request_id)
        return _json(submit_payload(job, urls), 200, job.request_id, _cost_header(job))

    @get("/{fal_path:path}")
    async def read(
        self,
        request: AnyRequest,
        fal_path: FromPath[str],
        jobs: NamedDependency[JobService],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        logs: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """``.../requests/{id}`` (result), ``.../status`` and ``.../status/stream``."""
        target = _request_path(fal_path, {"result", "status", "stream"})
        job = await jobs.get(principal, target.app, target.request_id)
        if target.action == "result":
            answer = result_response(job)
            return _json(answer.body, answer.status_code, job.request_id, answer.headers | _cache_headers(job))
        urls = job_urls(_base_url(request, settings), app_of(job.endpoint_id), job.request_id)
        if target.action == "stream":
            events = _status_events(
                jobs, job.request_id, urls=urls, with_logs=_truthy(logs), keepalive=settings.sse_keepalive_seconds
            )
            return ServerSentEvent(events, headers={"x-fal-request-id": job.request_id, "Cache-Control": "no-cache"})
        body = status_payload(job, urls, with_logs=_truthy(logs))
        return _json(body, 200 if job.done else 202, job.request_id)

    @put("/{fal_path:path}", status_code=202)
    async def cancel(
        self, fal_path: FromPath[str], jobs: NamedDependency[JobService], principal: NamedDependency[Principal]
    ) -> Response[Any]:
        target = _request_path(fal_path, {"cancel"})
        if await jobs.cancel(principal, target.app, target.request_id):
            return _json({"status": "CANCELLATION_REQUESTED"}, 202, target.request_id)
        return _json({"status": "ALREADY_COMPLETED"}, 400, target.request_id)


class RunController(Controller):
    tags = ["run"]  # noqa: RUF012 - Litestar reads this class attribute

    @post("/run/{endpoint_id:path}", status_code=200)
    async def run(
        self,
        request: AnyRequest,
        endpoint_id: FromPath[str],
        jobs: NamedDependency[JobService],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        job = await _admit_and_submit(request, endpoint_id, jobs, principal, JobMode.RUN, None)
        final = await jobs.wait_done(job.request_id, timeout=settings.run_timeout_seconds)
        if final is None or not final.done:
            raise GatewayError(
                "The request did not complete within the gateway's run timeout; it is still "
                "tracked and its result can be fetched from the queue API",
                error_type="request_timeout",
                headers={"x-fal-request-id": job.request_id},
            )
        answer = result_response(final)
        return _json(answer.body, answer.status_code, job.request_id, {**answer.headers, **_cost_header(job)})


async def _admit_and_submit(
    request: AnyRequest,
    endpoint_id: FromPath[str],
    jobs: NamedDependency[JobService],
    principal: NamedDependency[Principal],
    mode: JobMode,
    webhook: str | None,
) -> Job:
    endpoint = jobs.endpoint(endpoint_id)
    data = jobs.validate(endpoint, await request.body(), webhook_url=webhook)
    jobs.check_policy(principal, endpoint, data)
    headers = {name: value for name in FORWARDED_SUBMIT_HEADERS if (value := request.headers.get(name)) is not None}
    query = {"fal_max_queue_length": v} if (v := request.query_params.get("fal_max_queue_length")) else {}
    job = await jobs.submit(
        principal,
        endpoint,
        data,
        mode=mode,
        webhook_url=webhook,
        headers=headers,
        query=query,
        cache=directive_of(request.headers),
    )
    request.state.fal_request_id = job.request_id
    return job


async def _status_events(
    jobs: NamedDependency[JobService], request_id: FromPath[str], *, urls: JobUrls, with_logs: bool, keepalive: float
) -> AsyncIterator[ServerSentEventMessage]:
    """One ``data:`` event per change, a comment every ``keepalive`` seconds, and the end after COMPLETED."""
    last_body: dict[str, Any] | None = None
    last_sent = time.monotonic()
    async for job in jobs.watch(request_id):
        if job is None:
            return
        body = status_payload(job, urls, with_logs=with_logs)
        if body != last_body:
            last_body, last_sent = body, time.monotonic()
            yield ServerSentEventMessage(data=json.dumps(body))
        elif time.monotonic() - last_sent >= keepalive:
            last_sent = time.monotonic()
            yield ServerSentEventMessage(comment="keep-alive")


def _json(body: Any, status: int, request_id: FromPath[str], headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=body,
        status_code=status,
        media_type="application/json",
        headers={"x-fal-request-id": request_id, **(headers or {})},
    )


def _cost_header(job: Job) -> dict[str, str]:
    """The estimate reserved for an accepted request (micro-USD), and how the cache answered it."""
    headers = {"x-gateway-cost-micros": str(job.estimate_micros)} if job.estimate_micros is not None else {}
    return headers | _cache_headers(job)


_CACHE_HEADER = {"hit": "hit", "follower": "merged", "leader": "miss", "bypass": "bypass"}


def _cache_headers(job: Job) -> dict[str, str]:
    if job.cache_role is None or job.cache_key is None:
        return {}
    return {"x-gateway-cache": _CACHE_HEADER[job.cache_role], "x-gateway-cache-key": job.cache_key}


def _base_url(request: AnyRequest, settings: NamedDependency[Settings]) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


def _request_path(fal_path: str, actions: set[str]) -> RequestPath:
    target = parse_request_path(fal_path)
    if target is None or target.action not in actions:
        raise NotFound("Not found")
    return target


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes"}
