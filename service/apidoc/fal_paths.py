"""fal's queue and run routes as the whole document describes them: one operation per real route and endpoint
(docs/protocol.md §1.3, §4, §5), though one generic route serves each method inside (``service/jobs/controller.py``).

For each Seedance endpoint: the queue submit, the run and the estimate at the endpoint's literal path; then the
request routes both endpoints share under ``/queue/fal-ai/bytedance/requests/{request_id}``."""

from __future__ import annotations

from typing import Any

from service.apidoc.components import ENDPOINT_INPUTS, Schema, ref
from service.apidoc.responses import errors, headers, json_response, with_errors
from service.domain.endpoints import ENDPOINTS, Endpoint

OUTPUT = "BytedanceSeedanceV15ProOutput"
CACHE_HEADERS = ("x-gateway-cache", "x-gateway-cache-key")
SUBMIT_HEADERS = (*CACHE_HEADERS, "x-gateway-cost-micros")
TENANT_ERRORS = (401, 403, 429, 503)
SUBMIT_ERRORS = (*TENANT_ERRORS, 400, 402, 404, 409, 413, 422, 500, 502, 504)
FAILED = (400, 422, 499, 500, 502, 503, 504)  # what a failed request's result may answer (fal's statuses)
STREAM = "text/event-stream"
STATUS_EVENT: Schema = {
    "type": "object",
    "description": "Each event: its data is the request's status body.",
    "required": ["data"],
    "properties": {
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": ref("QueueStatus")}
    },
}

FORWARDED_HEADERS: tuple[tuple[str, Schema, str], ...] = (
    (
        "X-Fal-Request-Timeout",
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"},
        "Seconds the request may wait to start at fal, above 0.1 (else 400 bad_request); passed on to fal.",
    ),
    ("X-Fal-Queue-Priority", {"type": "string", "enum": ["normal", "low"]}, "fal's queue priority (passed on)."),
    ("X-Fal-Runner-Hint", {"type": "string"}, "A runner hint (passed on to fal)."),
    ("X-Fal-No-Retry", {"type": "string", "enum": ["1", "true", "yes"]}, "No retries at fal (passed on)."),
    (
        "X-Fal-Object-Lifecycle-Preference",
        {"type": "string"},
        'JSON, e.g. `{"expiration_duration_seconds": 3600}` (passed on to fal).',
    ),
    ("X-Fal-Store-IO", {"type": "string", "enum": ["0", "1"]}, "`0`: fal does not store the payloads (passed on)."),
)
GATEWAY_HEADERS: tuple[tuple[str, Schema, str], ...] = (
    (
        "Idempotency-Key",
        {"type": "string", "minLength": 1, "maxLength": 255},
        (
            "A retried submit with the same key answers the original job (no second submit or charge); 1 to 255 "
            "printable characters."
        ),
    ),
    (
        "x-gateway-cache",
        {"type": "string", "enum": ["bypass", "only-if-cached"]},
        "`bypass` (or `Cache-Control: no-cache`): skip the cache lookup; `only-if-cached`: a hit or 404 `cache_miss`.",
    ),
)


def _header_parameters(spec: tuple[tuple[str, Schema, str], ...]) -> list[Schema]:
    return [{"name": n, "in": "header", "required": False, "schema": s, "description": d} for n, s, d in spec]


def _body(endpoint: Endpoint) -> Schema:
    return {"required": True, "content": {"application/json": {"schema": ref(ENDPOINT_INPUTS[endpoint.kind])}}}


QUEUE_LENGTH = {
    "name": "fal_max_queue_length",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 0},
    "description": "fal answers 429 when its queue is longer (passed on to fal).",
}
WEBHOOK = {
    "name": "fal_webhook",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "format": "uri"},
    "description": "A URL to POST fal's webhook to when the request completes (a public http(s) URL).",
}
REQUEST_ID = {
    "name": "request_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "Request ID (the gateway's, from the submit answer).",
}
LOGS = {
    "name": "logs",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["0", "1", "true", "false"]},
    "description": "Whether to include logs (`1` or `true`) in the response or not (`0` or `false`).",
}


def _operation(endpoint: Endpoint, kind: str, summary: str, **fields: Any) -> Schema:
    return {
        "operationId": f"{kind}_{endpoint.kind.value.replace('-', '_')}",
        "summary": summary,
        "tags": [kind if kind != "estimate" else "budgets"],
        "security": [{"tenantKey": []}],
        "requestBody": _body(endpoint),
        **fields,
    }


def endpoint_paths(endpoint: Endpoint) -> dict[str, Schema]:
    """The submit, run and estimate of ``endpoint``, at its literal paths."""
    parameters = [*_header_parameters(FORWARDED_HEADERS), *_header_parameters(GATEWAY_HEADERS), QUEUE_LENGTH]
    submitted = json_response("Queued (IN_QUEUE), or COMPLETED for a cache hit.", ref("QueueStatus"), *SUBMIT_HEADERS)
    ran = json_response("The model's output.", ref(OUTPUT), *SUBMIT_HEADERS)
    estimated = json_response("The request's tokens and price; nothing is submitted or reserved.", ref("Estimate"))
    return {
        f"/queue/{endpoint.id}": {
            "post": _operation(
                endpoint,
                "queue",
                f"Submit a {endpoint.kind.value} request to the queue",
                parameters=[WEBHOOK, *parameters],
                responses=with_errors({"200": submitted}, SUBMIT_ERRORS),
            )
        },
        f"/run/{endpoint.id}": {
            "post": _operation(
                endpoint,
                "run",
                f"Run a {endpoint.kind.value} request and wait for its output",
                description="Submits like the queue, waits up to GATEWAY_RUN_TIMEOUT_SECONDS (then 504, the job goes "
                "on) and answers like the result: the output, or the failed request's status and body.",
                parameters=parameters,
                responses=with_errors({"200": ran}, SUBMIT_ERRORS, failed=FAILED),
            )
        },
        f"/v1/estimate/{endpoint.id}": {
            "post": _operation(
                endpoint,
                "estimate",
                f"Price a {endpoint.kind.value} request without submitting it",
                responses=with_errors({"200": estimated}, (*TENANT_ERRORS, 404, 413, 422)),
            )
        },
    }


def request_paths(app: str) -> dict[str, Schema]:
    """Status, status stream, result and cancel of a request of ``app`` (``owner/alias``)."""
    base = f"/queue/{app}/requests/{{request_id}}"
    status = ref("QueueStatus")
    stream = {
        "description": "One `data:` event per change (the status body), a `: keep-alive` comment every "
        "GATEWAY_SSE_KEEPALIVE_SECONDS; closed after the COMPLETED event.",
        "headers": headers("Cache-Control"),
        "content": {STREAM: {"schema": STATUS_EVENT}},
    }
    security: list[dict[str, list[str]]] = [{"tenantKey": []}]
    return {
        f"{base}/status": {
            "get": {
                "operationId": "status",
                "summary": "The request's status",
                "tags": ["queue"],
                "security": security,
                "parameters": [REQUEST_ID, LOGS],
                "responses": with_errors(
                    {
                        "200": json_response("COMPLETED (failed and cancelled requests too).", status),
                        "202": json_response("IN_QUEUE or IN_PROGRESS.", status),
                    },
                    (*TENANT_ERRORS, 404),
                ),
            }
        },
        f"{base}/status/stream": {
            "get": {
                "operationId": "status_stream",
                "summary": "The request's status as server-sent events",
                "tags": ["queue"],
                "security": security,
                "parameters": [REQUEST_ID, LOGS],
                "responses": {"200": stream, **errors((*TENANT_ERRORS, 404))},
            }
        },
        base: {
            "get": {
                "operationId": "result",
                "summary": "The request's result",
                "tags": ["queue"],
                "security": security,
                "parameters": [REQUEST_ID],
                "responses": with_errors(
                    {"200": json_response("The model's output.", ref(OUTPUT), *CACHE_HEADERS)},
                    (*TENANT_ERRORS, 404),
                    failed=FAILED,
                ),
            }
        },
        f"{base}/cancel": {
            "put": {
                "operationId": "cancel",
                "summary": "Cancel the request",
                "tags": ["queue"],
                "security": security,
                "parameters": [REQUEST_ID],
                "responses": {
                    "202": json_response("The cancellation is under way.", ref("CancellationRequested")),
                    "400": json_response("The request had already completed.", ref("AlreadyCompleted")),
                    **errors((*TENANT_ERRORS, 404, 502, 504)),
                },
            }
        },
    }


def fal_paths() -> dict[str, Schema]:
    """Every fal route of the whole document."""
    paths: dict[str, Schema] = {}
    for endpoint in ENDPOINTS.values():
        paths.update(endpoint_paths(endpoint))
    for app in sorted({endpoint.app for endpoint in ENDPOINTS.values()}):
        paths.update(request_paths(app))
    return paths
