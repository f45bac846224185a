"""The answers of the gateway's routes as OpenAPI response objects: each error status with the body the gateway
sends for it (``service/errors.py``), and the headers every answer carries (``service/http.py``) or some do
(``service/jobs/responses.py``, docs/protocol.md §14)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from service.apidoc.components import Schema, ref

JSON = "application/json"
# Every answer's headers: the request id (the caller's x-request-id is echoed, else the same id), and the sandbox
# mark on a sandbox tenant's answers.
EVERY_ANSWER = ("x-fal-request-id", "x-request-id", "x-gateway-sandbox")
HEADERS: dict[str, Schema] = {
    "x-fal-request-id": {
        "description": "The gateway's request id: the job's id on queue and run answers, else a fresh id that also "
        "appears in the gateway's logs.",
        "required": True,
        "schema": {"type": "string"},
    },
    "x-request-id": {
        "description": "The caller's own X-Request-Id (printable, at most 128 characters), else x-fal-request-id.",
        "required": True,
        "schema": {"type": "string"},
    },
    "x-gateway-sandbox": {
        "description": "`true` on every answer to a sandbox tenant's request.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "X-Fal-Error-Type": {
        "description": "The error type of a request error, as in the body's error_type (absent on 422 and on an error "
        "fal sent without one).",
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Whole seconds to wait before retrying (the gateway's own limits and open circuits).",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "X-Fal-Request-Timeout-Type": {
        "description": "`user` on a 504 that must not be re-sent (fal's clients then do not retry): a submit fal may "
        "have accepted (`upstream_submit_unknown`), a /run past the run timeout whose job goes on "
        "(`request_timeout`), or fal's own start-timeout expiry.",
        "schema": {"type": "string", "enum": ["user"]},
    },
    "x-gateway-cost-micros": {
        "description": "The amount the request reserved, in micro-USD (0 for cache hits, merged requests and "
        "sandbox tenants).",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "x-gateway-cache": {
        "description": "Cacheable requests only: hit, merged (attached to an identical request in flight), miss or "
        "bypass.",
        "schema": {"type": "string", "enum": ["hit", "merged", "miss", "bypass"]},
    },
    "x-gateway-cache-key": {
        "description": "Cacheable requests only: the cache key (for DELETE /admin/cache/entries/{cache_key}).",
        "schema": {"type": "string"},
    },
    "Cache-Control": {"description": "`no-cache`.", "schema": {"type": "string"}},
}
HEADER_REF = "#/components/headers/"
ERROR_HEADERS = ("X-Fal-Error-Type",)

# Each status the gateway answers with an error: the body's schema and what it means on any route.
ERRORS: dict[int, tuple[str | list[str], str]] = {
    400: (
        "RequestError",
        (
            "Bad request: `bad_request` (e.g. an invalid X-Fal-Request-Timeout), or `request_in_progress` for a "
            "result fetched too early."
        ),
    ),
    401: ("RequestError", "`unauthorized`: a missing, malformed, unknown, revoked or expired key or token."),
    402: ("BudgetExceededError", "`budget_exceeded`: the request's estimate does not fit the tenant's budget."),
    403: (
        "ForbiddenError",
        (
            "`tenant_disabled`, `policy_violation` (with `rule` and `field`), or an upload URL or token of another "
            "tenant or world."
        ),
    ),
    404: (
        "RequestError",
        (
            "Not found: `application_not_found`, `request_not_found`, `cache_miss` (only-if-cached), `not_found` and "
            "the route's own `*_not_found`."
        ),
    ),
    409: ("RequestError", "`conflict`, or `idempotency_in_progress` (retry): the resource is in another state."),
    413: ("RequestError", "`payload_too_large`: the body is beyond the route's limit (nothing was sent or charged)."),
    422: ("HTTPValidationError", "The request does not satisfy the schema: fal's detail list, one entry per problem."),
    429: (
        "RateLimitedError",
        (
            "A limit was reached: `rate_limited` (rate, concurrency, uploads), `auth_rate_limited`, "
            "`replica_shutting_down`; retry after `Retry-After`."
        ),
    ),
    499: ("RequestError", "`client_cancelled`: the request was cancelled."),
    500: (
        "AcceptedUnrecordedError",
        (
            "`upstream_accepted_unrecorded` (fal has the request; poll `request_id`), or a failed request's "
            "`runner_server_error`."
        ),
    ),
    502: ("RequestError", "fal failed or answered something unusable: `upstream_unavailable`, `upstream_auth_error`."),
    503: (
        "RequestError",
        "`state_store_unavailable` (Redis), `upstream_unavailable`, `upstream_circuit_open` (with `Retry-After`).",
    ),
    504: (
        "RequestError",
        (
            "`request_timeout` (the run timeout; the job goes on), `upstream_submit_unknown` (fal may have the "
            "request; not retried), `upstream_timeout`."
        ),
    ),
}
# Failed requests: the result (and /run) answers the status and body the request failed with (fal's two shapes).
FAILED_REQUEST = ["HTTPValidationError", "RequestError"]
RETRY_AFTER = frozenset({429, 503})
TIMEOUT_TYPED = frozenset({504})  # may carry X-Fal-Request-Timeout-Type


def header_components() -> dict[str, Schema]:
    return {name: dict(value) for name, value in HEADERS.items()}


def headers(*names: str) -> dict[str, Schema]:
    return {name: {"$ref": HEADER_REF + name} for name in (*EVERY_ANSWER, *names)}


def json_response(description: str, schema: Schema, *extra_headers: str) -> Schema:
    return {"description": description, "headers": headers(*extra_headers), "content": {JSON: {"schema": schema}}}


def errors(statuses: Iterable[int], *, failed: Iterable[int] = ()) -> dict[str, Schema]:
    """The error responses for ``statuses``; those in ``failed`` may also be a failed request's own answer."""
    failed_set = set(failed)
    out: dict[str, Schema] = {}
    for status in sorted({*statuses, *failed_set}):
        names, description = ERRORS[status]
        listed = [names] if isinstance(names, str) else list(names)
        if status in failed_set:
            listed += [n for n in FAILED_REQUEST if n not in listed]
            description += " A failed request answers with its own status and body here."
        schema = ref(listed[0]) if len(listed) == 1 else {"anyOf": [ref(n) for n in listed]}
        extra = [] if status == 422 else list(ERROR_HEADERS)
        if status in RETRY_AFTER:
            extra.append("Retry-After")
        if status in TIMEOUT_TYPED:
            extra.append("X-Fal-Request-Timeout-Type")
        out[str(status)] = json_response(description, schema, *extra)
    return out


def with_errors(success: Mapping[str, Schema], statuses: Iterable[int], **kwargs: Any) -> dict[str, Schema]:
    return {**success, **errors(statuses, **kwargs)}
