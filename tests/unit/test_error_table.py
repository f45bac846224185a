"""The one table that answers every exception with a gateway error (``service.errors.EXCEPTION_TABLE``), row by row."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, cast

import pytest
from litestar import Request
from litestar.exceptions import (
    ClientException,
    HTTPException,
    ImproperlyConfiguredException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    SerializationException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.types import HTTPScope
from redis import exceptions as redis_errors

from service.errors import (
    EXCEPTION_TABLE,
    GatewayError,
    GatewayTimeout,
    NotFound,
    TooManyRequests,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
    to_gateway_error,
)
from service.http import exception_handler

HEADER = "X-Fal-Error-Type"
STATE_STORE = {
    "detail": "The gateway's state store (Redis) is unavailable; nothing was sent upstream",
    "error_type": "state_store_unavailable",
}
INTERNAL = {"detail": "Internal server error", "error_type": "internal_error"}


@dataclass(frozen=True)
class Case:
    id: str
    exc: Exception
    row: type[Exception]  # the table row that must answer it: the most specific class along its MRO
    status: int
    body: Any
    headers: dict[str, str]


def request_error(status: int, detail: str, error_type: str, **headers: str) -> dict[str, Any]:
    return {
        "status": status,
        "body": {"detail": detail, "error_type": error_type},
        "headers": {HEADER: error_type, **headers},
    }


def validation(*entries: Any) -> ValidationException:
    return ValidationException(detail="Validation failed for POST /fal-ai/x", extra=list(entries))


TOO_DEEP = "JSON decode error: the body is nested too deep"
MALFORMED = "JSON is malformed: invalid character (byte 0)"


def undecodable_body(reason: str) -> ClientException:
    """Litestar's 400 for a JSON body it could not decode (``routes/http.py`` raises it from the decode error)."""
    exc = ClientException(detail=reason)
    exc.__cause__ = SerializationException(reason)
    return exc


CASES: list[Case] = [
    # GatewayError: answered as itself.
    Case(
        "not-found", NotFound("Request not found"), GatewayError, **request_error(404, "Request not found", "not_found")
    ),
    Case(
        "too-many-requests",
        TooManyRequests("slow down", retry_after=2.5, rule="requests_per_minute"),
        GatewayError,
        429,
        {"detail": "slow down", "error_type": "rate_limited", "rule": "requests_per_minute", "retry_after": 3},
        {HEADER: "rate_limited", "Retry-After": "3"},
    ),
    Case(
        "run-timeout",
        GatewayTimeout("still running", headers={"x-fal-request-id": "req-1"}),
        GatewayError,
        **request_error(504, "still running", "request_timeout", **{"x-fal-request-id": "req-1"}),
    ),
    Case(
        "submit-unknown",
        UpstreamTimeout("fal did not confirm the submission", error_type="upstream_submit_unknown"),
        GatewayError,
        **request_error(504, "fal did not confirm the submission", "upstream_submit_unknown"),
    ),
    Case(
        "upstream-503",
        UpstreamUnavailable("fal is down", status_code=503),
        GatewayError,
        **request_error(503, "fal is down", "upstream_unavailable"),
    ),
    Case("upstream-rejected", UpstreamRejected(418, {"detail": "teapot"}), GatewayError, 418, {"detail": "teapot"}, {}),
    # RecursionError: a body the JSON decoder could not descend into.
    Case(
        "too-deep",
        RecursionError("maximum recursion depth exceeded"),
        RecursionError,
        422,
        {
            "detail": [
                {"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error: the body is nested too deep"}
            ]
        },
        {},
    ),
    # RedisError and its subclasses: the state store is unavailable.
    Case(
        "redis",
        redis_errors.RedisError("boom"),
        redis_errors.RedisError,
        503,
        STATE_STORE,
        {HEADER: STATE_STORE["error_type"]},
    ),
    Case(
        "redis-connection",
        redis_errors.ConnectionError("refused"),
        redis_errors.RedisError,
        503,
        STATE_STORE,
        {HEADER: STATE_STORE["error_type"]},
    ),
    Case(
        "redis-timeout",
        redis_errors.TimeoutError("slow"),
        redis_errors.RedisError,
        503,
        STATE_STORE,
        {HEADER: STATE_STORE["error_type"]},
    ),
    Case(
        "redis-lock",
        redis_errors.LockError("held"),
        redis_errors.RedisError,
        503,
        STATE_STORE,
        {HEADER: STATE_STORE["error_type"]},
    ),
    # ValidationException (before HTTPException): fal's detail list, no error-type header.
    Case(
        "validation-field",
        validation({"key": "prompt", "message": "Field required", "source": "body"}),
        ValidationException,
        422,
        {"detail": [{"type": "value_error", "loc": ["body", "prompt"], "msg": "Field required"}]},
        {},
    ),
    Case(
        "validation-missing-body",
        validation({"key": "data", "message": "'data' is required"}),
        ValidationException,
        422,
        {"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required"}]},
        {},
    ),
    Case(
        "validation-not-an-object",
        validation({"key": "", "message": "Expected `object`, got `array`"}, "not a dict"),
        ValidationException,
        422,
        {"detail": [{"type": "model_attributes_type", "loc": ["body"], "msg": "Input should be a JSON object"}]},
        {},
    ),
    Case(
        "validation-missing-parameter",
        ValidationException(
            detail="Missing required query parameter 'endpoint_id' for path /openapi/queue/openapi.json"
        ),
        ValidationException,
        422,
        {"detail": [{"type": "missing", "loc": ["query", "endpoint_id"], "msg": "Field required"}]},
        {},
    ),
    Case(
        "validation-no-entries",
        ValidationException(detail="Bad body"),
        ValidationException,
        422,
        {"detail": [{"type": "value_error", "loc": ["body"], "msg": "Bad body"}]},
        {},
    ),
    # NotFoundException (before HTTPException).
    Case(
        "litestar-not-found",
        NotFoundException(detail="No route"),
        NotFoundException,
        **request_error(404, "Not found", "not_found"),
    ),
    # HTTPException: 413 becomes PayloadTooLarge, any other status is kept with Litestar's detail.
    Case(
        "413",
        ClientException(status_code=413),
        HTTPException,
        **request_error(413, "Request body is too large", "payload_too_large"),
    ),
    Case(
        "405",
        MethodNotAllowedException(),
        HTTPException,
        **request_error(405, "Method Not Allowed", "method_not_allowed"),
    ),
    Case(
        "undecodable-body",
        undecodable_body(MALFORMED),
        HTTPException,
        422,
        {
            "detail": [
                {
                    "type": "json_invalid",
                    "loc": ["body"],
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": MALFORMED},
                }
            ]
        },
        {},
    ),
    Case("400", ClientException(detail="Bad header"), HTTPException, **request_error(400, "Bad header", "bad_request")),
    Case("401", NotAuthorizedException(), HTTPException, **request_error(401, "Unauthorized", "unauthorized")),
    Case("403", PermissionDeniedException(), HTTPException, **request_error(403, "Forbidden", "forbidden")),
    Case("429", TooManyRequestsException(), HTTPException, **request_error(429, "Too Many Requests", "rate_limited")),
    Case(
        "418",
        HTTPException(status_code=418, detail="teapot"),
        HTTPException,
        **request_error(418, "teapot", "bad_request"),
    ),
    Case(
        "500",
        ImproperlyConfiguredException(),
        HTTPException,
        **request_error(500, "Internal Server Error", "internal_error"),
    ),
    # Anything else: a bare 500 that names nothing about the failure.
    Case("value-error", ValueError("secret detail"), Exception, 500, INTERNAL, {HEADER: "internal_error"}),
    Case("key-error", KeyError("tenant"), Exception, 500, INTERNAL, {HEADER: "internal_error"}),
]


def render(exc: Exception) -> tuple[int, str, dict[str, str]]:
    error = to_gateway_error(exc)
    return error.status_code, json.dumps(error.body(), allow_nan=False), error.response_headers()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_row_answers_with_its_status_body_and_headers(case: Case) -> None:
    error = to_gateway_error(case.exc)

    assert (error.status_code, error.body(), error.response_headers()) == (case.status, case.body, case.headers)
    if isinstance(case.exc, GatewayError):
        assert error is case.exc


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_most_specific_row_along_the_mro_answers(case: Case) -> None:
    assert next(cls for cls in type(case.exc).__mro__ if cls in EXCEPTION_TABLE) is case.row


def test_every_row_of_the_table_is_covered_by_a_case() -> None:
    assert {case.row for case in CASES} == set(EXCEPTION_TABLE)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_converting_never_mutates_the_exception(case: Case) -> None:
    before = copy.deepcopy(vars(case.exc)), case.exc.args, str(case.exc)
    classes = {cls: dict(vars(cls)) for cls in type(case.exc).__mro__}  # a class attribute reassigned shows here

    first = render(case.exc)
    second = render(case.exc)

    assert first == second
    assert (copy.deepcopy(vars(case.exc)), case.exc.args, str(case.exc)) == before
    assert {cls: dict(vars(cls)) for cls in classes} == classes
    assert (GatewayError.status_code, GatewayError.error_type) == (500, "internal_error")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_the_exception_handler_answers_with_the_row(case: Case) -> None:
    scope = cast("HTTPScope", {"type": "http", "state": {"fal_request_id": "req-0"}})
    request: Request[Any, Any, Any] = Request(scope)

    response = exception_handler(request, case.exc)

    assert response.status_code == case.status
    assert response.content == case.body
    assert response.media_type == "application/json"
    assert dict(response.headers) == {"x-fal-request-id": "req-0", **case.headers}


# --- every attribute is given at construction ----------------------------------------------------------------------


def test_a_status_given_at_construction_stays_on_the_instance() -> None:
    error = GatewayError("Method Not Allowed", status_code=405, error_type="method_not_allowed")

    assert (error.status_code, error.error_type) == (405, "method_not_allowed")
    assert (GatewayError.status_code, GatewayError.error_type) == (500, "internal_error")
    assert GatewayError("fresh").status_code == 500


def test_an_unknown_submit_outcome_is_built_directly() -> None:
    error = UpstreamTimeout("fal did not confirm the submission in time", error_type="upstream_submit_unknown")

    assert isinstance(error, UpstreamTimeout)
    assert (error.status_code, error.message) == (504, "fal did not confirm the submission in time")
    assert error.body() == {"detail": error.message, "error_type": "upstream_submit_unknown"}
    assert UpstreamTimeout("fresh").error_type == "upstream_timeout"
