"""The gateway's error tree rendered as fal's two error shapes (docs/protocol.md §6.1)."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from service import errors
from service.errors import (
    BadRequest,
    BudgetExceeded,
    Conflict,
    Forbidden,
    GatewayError,
    GatewayTimeout,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PolicyDenied,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

HEADER = "X-Fal-Error-Type"

# Errors rendered as ``{"detail": "<message>", "error_type": "<type>"}`` plus the header: class, status, error_type.
REQUEST_ERRORS: list[tuple[type[GatewayError], int, str]] = [
    (GatewayError, 500, "internal_error"),
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (BadRequest, 400, "bad_request"),
    (Conflict, 409, "conflict"),
    (PayloadTooLarge, 413, "payload_too_large"),
    (ServiceUnavailable, 503, "service_unavailable"),
    (GatewayTimeout, 504, "request_timeout"),
    (UpstreamError, 502, "upstream_error"),
    (UpstreamUnavailable, 502, "upstream_unavailable"),
    (UpstreamTimeout, 504, "upstream_timeout"),
]
# Errors with their own rendering, tested separately below.
SPECIAL_ERRORS: set[type[GatewayError]] = {
    InvalidRequest,
    UpstreamRejected,
    PolicyDenied,
    TooManyRequests,
    BudgetExceeded,
}

# The tree drawn in the module docstring.
PARENTS: dict[type[GatewayError], type[Exception]] = {
    GatewayError: Exception,
    InvalidRequest: GatewayError,
    Unauthorized: GatewayError,
    Forbidden: GatewayError,
    PolicyDenied: Forbidden,
    TooManyRequests: GatewayError,
    BudgetExceeded: GatewayError,
    NotFound: GatewayError,
    BadRequest: GatewayError,
    Conflict: GatewayError,
    PayloadTooLarge: GatewayError,
    ServiceUnavailable: GatewayError,
    GatewayTimeout: GatewayError,
    UpstreamError: GatewayError,
    UpstreamUnavailable: UpstreamError,
    UpstreamTimeout: UpstreamError,
    UpstreamRejected: UpstreamError,
}


def error_classes() -> set[type[Exception]]:
    return {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == errors.__name__
    }


def test_every_error_class_is_covered_by_these_tests() -> None:
    request_errors: set[type[Exception]] = {cls for cls, _, _ in REQUEST_ERRORS}

    assert error_classes() == request_errors | SPECIAL_ERRORS
    assert not request_errors & SPECIAL_ERRORS


@pytest.mark.parametrize(("cls", "parent"), list(PARENTS.items()), ids=lambda v: getattr(v, "__name__", str(v)))
def test_the_tree_matches_the_docstring(cls: type[GatewayError], parent: type[Exception]) -> None:
    assert cls.__bases__ == (parent,)
    assert cls.__name__ in (errors.__doc__ or "")


# --- request errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "status", "error_type"), REQUEST_ERRORS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_request_errors_render_fal_request_error_shape(cls: type[GatewayError], status: int, error_type: str) -> None:
    exc = cls("Something went wrong")

    assert exc.status_code == status
    assert exc.error_type == error_type
    assert exc.message == "Something went wrong"
    assert str(exc) == "Something went wrong"
    assert exc.body() == {"detail": "Something went wrong", "error_type": error_type}
    assert exc.response_headers() == {HEADER: error_type}
    json.dumps(exc.body(), allow_nan=False)


@pytest.mark.parametrize(("cls", "status", "error_type"), REQUEST_ERRORS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_the_header_always_equals_the_body_error_type(cls: type[GatewayError], status: int, error_type: str) -> None:
    exc = cls("Request timed out", error_type="request_timeout")

    assert exc.body() == {"detail": "Request timed out", "error_type": "request_timeout"}
    assert exc.response_headers()[HEADER] == exc.body()["error_type"] == "request_timeout"
    assert exc.status_code == status
    assert cls("fresh").error_type == error_type, "an instance's error_type must not leak into others"


# UpstreamUnavailable's constructor takes a status instead of extra headers.
@pytest.mark.parametrize(
    "cls", [c for c, _, _ in REQUEST_ERRORS if c is not UpstreamUnavailable], ids=lambda v: v.__name__
)
def test_extra_headers_are_added_to_the_error_type_header(cls: type[GatewayError]) -> None:
    extra = {"Retry-After": "5", "X-Fal-Retryable": "true"}

    exc = cls("busy", headers=extra)
    extra["Retry-After"] = "60"

    assert exc.response_headers() == {HEADER: exc.error_type, "Retry-After": "5", "X-Fal-Retryable": "true"}


def test_response_headers_are_a_fresh_dict_each_time() -> None:
    exc = NotFound("Request not found")

    exc.response_headers()["X-Injected"] = "1"

    assert exc.response_headers() == {HEADER: "not_found"}


# --- UpstreamUnavailable ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 500])
def test_upstream_unavailable_honours_a_custom_status(status: int) -> None:
    exc = UpstreamUnavailable("fal is down", status_code=status)

    assert exc.status_code == status
    assert exc.body() == {"detail": "fal is down", "error_type": "upstream_unavailable"}
    assert exc.response_headers() == {HEADER: "upstream_unavailable"}
    assert UpstreamUnavailable("again").status_code == 502, "an instance's status must not leak into others"


def test_upstream_unavailable_takes_fal_error_types() -> None:
    exc = UpstreamUnavailable("No runner", status_code=503, error_type="runner_scheduling_failure")

    assert exc.status_code == 503
    assert exc.body() == {"detail": "No runner", "error_type": "runner_scheduling_failure"}
    assert exc.response_headers() == {HEADER: "runner_scheduling_failure"}


# --- InvalidRequest -------------------------------------------------------------------------------------------------

DETAIL: list[dict[str, Any]] = [
    {
        "type": "enum",
        "loc": ["body", "duration"],
        "msg": "Input should be '4', '5', '6', '7', '8', '9', '10', '11' or '12'",
        "input": "3",
        "ctx": {"expected": "'4', '5', '6', '7', '8', '9', '10', '11' or '12'"},
    },
    {"type": "missing", "loc": ["body", "prompt"], "msg": "Field required", "input": {}},
]


@pytest.mark.parametrize("detail", [DETAIL, DETAIL[:1], []], ids=["two", "one", "empty"])
def test_invalid_request_renders_fastapi_detail_list(detail: list[dict[str, Any]]) -> None:
    exc = InvalidRequest(detail)

    assert exc.status_code == 422
    assert exc.detail == detail
    assert exc.body() == {"detail": detail}
    assert "error_type" not in exc.body()
    assert exc.response_headers() == {}, "fal's detail-list shape has no X-Fal-Error-Type header"
    json.dumps(exc.body(), allow_nan=False)


# --- UpstreamRejected -----------------------------------------------------------------------------------------------

PAYLOADS: list[tuple[int, Any]] = [
    (422, {"detail": DETAIL}),
    (400, {"detail": "Invalid timeout header", "error_type": "bad_request"}),
    (504, {"detail": "Request timed out", "error_type": "request_timeout"}),
    (500, {"detail": "Internal error", "error_type": "internal_error", "extra": [1, None]}),
    (429, {"message": "slow down"}),
    (403, {"detail": None}),
    (503, ["not", "an", "object"]),
    (502, "upstream sent text"),
    (404, None),
]


@pytest.mark.parametrize(("status", "payload"), PAYLOADS)
def test_upstream_rejected_passes_status_and_payload_through(status: int, payload: Any) -> None:
    snapshot = json.dumps(payload)

    exc = UpstreamRejected(status, payload)

    assert exc.status_code == status
    assert exc.body() is payload
    assert json.dumps(exc.body()) == snapshot
    assert exc.response_headers() == {}


@pytest.mark.parametrize(("status", "payload"), PAYLOADS)
def test_upstream_rejected_sends_the_header_only_for_an_upstream_error_type(status: int, payload: Any) -> None:
    exc = UpstreamRejected(status, payload, error_type="runner_disconnected")

    assert exc.response_headers() == {HEADER: "runner_disconnected"}
    assert exc.upstream_error_type == "runner_disconnected"
    assert exc.body() is payload


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"detail": "Request timed out"}, "Request timed out"),
        ({"detail": DETAIL}, "Upstream returned 422"),
        ({"detail": None}, "Upstream returned 422"),
        ({}, "Upstream returned 422"),
        (["x"], "Upstream returned 422"),
        (None, "Upstream returned 422"),
    ],
)
def test_upstream_rejected_message_uses_a_string_detail(payload: Any, message: str) -> None:
    exc = UpstreamRejected(422, payload)

    assert exc.message == message
    assert str(exc) == message


def test_upstream_rejected_status_does_not_leak_into_the_class() -> None:
    UpstreamRejected(418, {"detail": "teapot"})

    assert UpstreamRejected.status_code == 502


def test_policy_denied_names_the_rule_and_field() -> None:
    error = PolicyDenied("max_resolution", "Resolution 1080p exceeds 720p", field="resolution")
    assert error.status_code == 403
    assert error.body() == {
        "detail": "Resolution 1080p exceeds 720p (policy: max_resolution)",
        "error_type": "policy_violation",
        "rule": "max_resolution",
        "field": "resolution",
    }
    assert error.response_headers() == {HEADER: "policy_violation"}
    assert "field" not in PolicyDenied("allowed_endpoints", "no").body()


@pytest.mark.parametrize(("retry_after", "header"), [(0.0, "1"), (0.2, "1"), (1.0, "1"), (1.01, "2"), (59.5, "60")])
def test_too_many_requests_rounds_retry_after_up_to_whole_seconds(retry_after: float, header: str) -> None:
    error = TooManyRequests("slow down", retry_after=retry_after, rule="requests_per_minute")
    assert error.status_code == 429
    assert error.response_headers() == {HEADER: "rate_limited", "Retry-After": header}
    assert error.body() == {
        "detail": "slow down",
        "error_type": "rate_limited",
        "rule": "requests_per_minute",
        "retry_after": int(header),
    }


def test_budget_exceeded_states_limit_spent_reserved_and_estimate() -> None:
    error = BudgetExceeded(
        limit=1_000_000, spent=600_000, reserved=300_000, estimate=259_200, period_end="2026-12-01T00:00:00Z"
    )
    assert error.status_code == 402
    assert error.body() == {
        "detail": error.message,
        "error_type": "budget_exceeded",
        "limit_micros": 1_000_000,
        "spent_micros": 600_000,
        "reserved_micros": 300_000,
        "estimate_micros": 259_200,
        "remaining_micros": 100_000,
        "period_end": "2026-12-01T00:00:00Z",
    }
    assert "259200" in error.message
    assert error.response_headers() == {HEADER: "budget_exceeded"}
