"""fal's queue and run APIs under ``/queue`` and ``/run`` (docs/protocol.md §1.3, §4, §5, §15), and the price of a
request before it is submitted (``/v1/estimate``)."""

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
from service.domain.fal_headers import START_TIMEOUT_HEADER
from service.domain.jobs import Job, JobMode, JobUrls, job_urls, status_payload, submit_payload
from service.domain.urls import PUBLIC_ONLY
from service.drain import Drain
from service.errors import GatewayTimeout, NotFound
from service.jobs import intake
from service.jobs.api import Call, JobApi
from service.jobs.handover import shutting_down
from service.jobs.idempotency import checked_key
from service.jobs.queries import JobQueries
from service.jobs.responses import NOT_RETRIED, cache_headers, cost_headers, json_response, result_response
from service.jobs.submit import SubmitRequest
from service.outbound import webhook_policy
from service.tenants.auth import Principal
from service.upstream.fal import FORWARDED_SUBMIT_HEADERS

AnyRequest = Request[Any, Any, Any]
SHUTDOWN_COMMENT = "this gateway replica is shutting down; reconnect"
RECONNECT_MS = 1000


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
        call: NamedDependency[Call],
        fal_webhook: FromQuery[str | None] = None,
    ) -> Response[Any]:
        principal, api = call.principal, call.api
        submit = await _submit_request(request, fal_path, JobMode.QUEUE, fal_webhook, principal, api)
        job = await api.submits.submit(principal, submit)
        request.state.fal_request_id = job.request_id
        urls = job_urls(_base_url(request, api.settings), app_of(job.endpoint_id), job.request_id)
        return json_response(submit_payload(job, urls), 200, job.request_id, cost_headers(job))

    @get("/{fal_path:path}")
    async def read(
        self,
        request: AnyRequest,
        fal_path: FromPath[str],
        call: NamedDependency[Call],
        logs: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """``.../requests/{id}`` (result), ``.../status`` and ``.../status/stream``."""
        target = _request_path(fal_path, {"result", "status", "stream"})
        queries, settings = call.api.queries, call.api.settings
        job = await queries.get(call.principal, target.app, target.request_id)
        if target.action == "result":
            answer = result_response(job)
            return json_response(answer.body, answer.status_code, job.request_id, answer.headers | cache_headers(job))
        urls = job_urls(_base_url(request, settings), app_of(job.endpoint_id), job.request_id)
        if target.action == "stream":
            events = _status_events(
                queries,
                job.request_id,
                urls=urls,
                with_logs=_truthy(logs),
                keepalive=settings.sse_keepalive_seconds,
                drain=call.api.drain,
                grace=settings.shutdown_stream_grace_seconds,
            )
            return ServerSentEvent(events, headers={"x-fal-request-id": job.request_id, "Cache-Control": "no-cache"})
        body = status_payload(job, urls, with_logs=_truthy(logs))
        return json_response(body, 200 if job.done else 202, job.request_id)

    @put("/{fal_path:path}", status_code=202)
    async def cancel(
        self,
        fal_path: FromPath[str],
        call: NamedDependency[Call],
    ) -> Response[Any]:
        target = _request_path(fal_path, {"cancel"})
        if await call.api.cancellation.cancel(call.principal, target.app, target.request_id):
            return json_response({"status": "CANCELLATION_REQUESTED"}, 202, target.request_id)
        return json_response({"status": "ALREADY_COMPLETED"}, 400, target.request_id)


class RunController(Controller):
    tags = ["run"]  # noqa: RUF012 - Litestar reads this class attribute

    @post("/run/{endpoint_id:path}", status_code=200)
    async def run(
        self,
        request: AnyRequest,
        endpoint_id: FromPath[str],
        call: NamedDependency[Call],
    ) -> Response[Any]:
        principal, api = call.principal, call.api
        submit = await _submit_request(request, endpoint_id, JobMode.RUN, None, principal, api)
        if api.drain.begun():  # shutting down: nothing is submitted here, the retry goes to a replica that stays
            raise shutting_down()
        handed_over = await api.handovers.take(principal, submit) if submit.idempotency_key is None else None
        job = handed_over or await api.submits.submit(principal, submit)
        request.state.fal_request_id = job.request_id
        final = await api.queries.wait_done(
            job.request_id, timeout=api.settings.run_timeout_seconds, until=api.drain.begun
        )
        if (final is None or not final.done) and api.drain.begun():
            if submit.idempotency_key is None:  # with a key, the key answers the retry with this job
                await api.handovers.give(principal, submit, job.request_id)
            raise shutting_down()
        if final is None or not final.done:
            raise GatewayTimeout(
                "The request did not complete within the gateway's run timeout; it is still "
                "tracked and its result can be fetched from the queue API",
                headers={"x-fal-request-id": job.request_id, **NOT_RETRIED},
            )
        answer = result_response(final)
        return json_response(answer.body, answer.status_code, job.request_id, {**answer.headers, **cost_headers(job)})


class EstimateController(Controller):
    path = "/v1"
    tags = ["budgets"]  # noqa: RUF012 - Litestar reads this class attribute

    @post("/estimate/{endpoint_id:path}", status_code=200)
    async def estimate(
        self,
        request: AnyRequest,
        endpoint_id: FromPath[str],
        call: NamedDependency[Call],
    ) -> dict[str, Any]:
        """Tokens and cost of a request, validated exactly like a submit, without submitting or reserving anything.
        The cost is the amount a submit would reserve (the upper bound; see the README's pricing section)."""
        principal, ledger, metrics = call.principal, call.api.ledger, call.api.metrics
        endpoint = intake.endpoint_named(endpoint_id, metrics)
        raw = await request.body()
        intake.check_body_size(endpoint, raw, call.api.settings, metrics)
        data = intake.validated(endpoint, raw, metrics, webhook_url=None, webhook_policy=PUBLIC_ONLY)
        quote = ledger.estimate(data)
        return {
            "endpoint_id": endpoint.id,
            "tokens": quote.tokens,
            "cost_micros": quote.cost_micros,
            "cost_usd": quote.cost_usd,
            "width": quote.width,
            "height": quote.height,
            "frames": quote.frames,
            "audio": quote.audio,
            "resolution": quote.resolution.value,
            "aspect_ratio": quote.aspect_ratio.value,
            "tenant_id": principal.tenant_id,
        }


async def _submit_request(
    request: AnyRequest,
    endpoint_id: str,
    mode: JobMode,
    webhook: str | None,
    principal: Principal,
    api: JobApi,
) -> SubmitRequest:
    """Intake for a submit or run: endpoint, body, webhook and policy checked; what to forward collected."""
    settings, metrics = api.settings, api.metrics
    endpoint = intake.endpoint_named(endpoint_id, metrics)
    raw = await request.body()
    intake.check_body_size(endpoint, raw, settings, metrics)
    data = intake.validated(
        endpoint,
        raw,
        metrics,
        webhook_url=webhook,
        webhook_policy=webhook_policy(settings),
    )
    intake.check_start_timeout(request.headers.get(START_TIMEOUT_HEADER), metrics)
    intake.check_policy(principal, endpoint, data, metrics)
    if webhook is None and mode is JobMode.QUEUE:
        webhook = intake.default_webhook(principal, webhook_policy(settings), metrics)
    headers = {name: value for name in FORWARDED_SUBMIT_HEADERS if (value := request.headers.get(name)) is not None}
    query = {"fal_max_queue_length": v} if (v := request.query_params.get("fal_max_queue_length")) else {}
    return SubmitRequest(
        endpoint=endpoint,
        data=data,
        mode=mode,
        webhook_url=webhook,
        headers=headers,
        query=query,
        cache=directive_of(request.headers),
        idempotency_key=checked_key(request.headers.get("idempotency-key")),
    )


async def _status_events(
    queries: JobQueries,
    request_id: str,
    *,
    urls: JobUrls,
    with_logs: bool,
    keepalive: float,
    drain: Drain,
    grace: float,
) -> AsyncIterator[ServerSentEventMessage]:
    """One ``data:`` event per change, a comment every ``keepalive`` seconds (a comment only: an empty ``data:``
    line would be an event, which fal's JS client fails to parse as JSON), and the end after COMPLETED. On a replica
    shutting down, the end also comes ``grace`` seconds into the drain, after a reconnect hint (§15)."""
    last_body: dict[str, Any] | None = None
    last_sent = time.monotonic()
    job: Job | None
    async for job in queries.watch(request_id):
        if job is None:
            return
        body = status_payload(job, urls, with_logs=with_logs)
        if body != last_body:
            last_body, last_sent = body, time.monotonic()
            yield ServerSentEventMessage(data=json.dumps(body))
        elif time.monotonic() - last_sent >= keepalive:
            last_sent = time.monotonic()
            yield ServerSentEventMessage(data=None, comment="keep-alive")
        if not job.done and drain.lasted(grace):
            yield ServerSentEventMessage(data=None, comment=SHUTDOWN_COMMENT, retry=RECONNECT_MS)
            return


def _base_url(request: AnyRequest, settings: Settings) -> str:
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
