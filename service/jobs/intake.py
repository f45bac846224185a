"""Intake: the checks every request passes before anything is stored, reserved or sent (docs/protocol.md §6.1).

Module functions, so the estimate route runs exactly the same checks as a submit without a submit pipeline.
"""

from __future__ import annotations

from service.config import Settings
from service.domain.endpoints import Endpoint, EndpointKind, find_endpoint
from service.domain.fal_headers import InvalidStartTimeout, start_timeout
from service.domain.policy import check_request
from service.domain.schemas import InvalidInputError, TextToVideoInput, parse_input
from service.domain.urls import OutboundPolicy, url_problem
from service.errors import BadRequest, InvalidRequest, NotFound, PayloadTooLarge, PolicyDenied
from service.metrics import Metrics
from service.tenants.auth import Principal


def endpoint_named(endpoint_id: str, metrics: Metrics) -> Endpoint:
    """The Seedance endpoint a request names, or fal's 404 for an unknown application."""
    endpoint = find_endpoint(endpoint_id)
    if endpoint is None:
        metrics.requests_rejected.labels(reason="unknown_endpoint").inc()
        raise NotFound(f"Application '{endpoint_id}' not found", error_type="application_not_found")
    return endpoint


def check_body_size(endpoint: Endpoint, raw: bytes, settings: Settings, metrics: Metrics) -> None:
    """413 for a body beyond its endpoint's limit: image-to-video may carry both frames as data: URIs
    (``GATEWAY_IMAGE_TO_VIDEO_MAX_BODY_BYTES``); text-to-video keeps ``GATEWAY_MAX_BODY_BYTES``."""
    limit = (
        settings.image_to_video_max_body_bytes
        if endpoint.kind is EndpointKind.IMAGE_TO_VIDEO
        else settings.max_body_bytes
    )
    if len(raw) > limit:
        metrics.requests_rejected.labels(reason="body_too_large").inc()
        raise PayloadTooLarge(f"Request body exceeds {limit} bytes")


def validated(
    endpoint: Endpoint, raw: bytes, metrics: Metrics, *, webhook_url: str | None, webhook_policy: OutboundPolicy
) -> TextToVideoInput:
    """Validate body and webhook exactly as fal would, before anything is stored or sent (the webhook as far as its
    URL tells; its delivery checks the addresses its host resolves to)."""
    try:
        data = parse_input(endpoint, raw)
    except InvalidInputError as exc:
        metrics.requests_rejected.labels(reason="invalid_input").inc()
        raise InvalidRequest(exc.detail) from None
    if webhook_url is not None:
        problem = url_problem(webhook_url, webhook_policy)
        if problem:
            metrics.requests_rejected.labels(reason="invalid_webhook").inc()
            raise InvalidRequest(
                [{"type": "url_rejected", "loc": ["query", "fal_webhook"], "msg": problem, "input": webhook_url}]
            )
    return data


def check_start_timeout(value: str | None, metrics: Metrics) -> None:
    """fal's 400 for an ``X-Fal-Request-Timeout`` that is not a number of seconds above its minimum (§10)."""
    try:
        start_timeout(value)
    except InvalidStartTimeout as exc:
        metrics.requests_rejected.labels(reason="invalid_header").inc()
        raise BadRequest(str(exc)) from None


def check_policy(principal: Principal, endpoint: Endpoint, data: TextToVideoInput, metrics: Metrics) -> None:
    """Refuse a request outside the tenant's policy, naming the rule; nothing is recorded or sent."""
    violation = check_request(principal.tenant.policy, endpoint.id, data)
    if violation is not None:
        metrics.requests_rejected.labels(reason=f"policy_{violation.rule}").inc()
        raise PolicyDenied(violation.rule, violation.message, field=violation.field)


def default_webhook(principal: Principal, webhook_policy: OutboundPolicy, metrics: Metrics) -> str | None:
    """The tenant policy's ``default_webhook_url`` for a queued request that names none, checked like one that
    does: the operator's setting may have been written before the outbound rules changed."""
    url = principal.tenant.policy.default_webhook_url
    if url is None:
        return None
    problem = url_problem(url, webhook_policy)
    if problem:
        metrics.requests_rejected.labels(reason="invalid_webhook").inc()
        raise InvalidRequest(
            [{"type": "url_rejected", "loc": ["policy", "default_webhook_url"], "msg": problem, "input": url}]
        )
    return url
