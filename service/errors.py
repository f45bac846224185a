"""The gateway's error tree and its rendering as fal error bodies (docs/protocol.md §6.1).

fal has two error shapes, and every error the gateway returns uses one of them:

- model / validation errors: ``{"detail": [{"loc": [...], "msg": ..., "type": ...}, ...]}`` (HTTP 422);
- request errors: ``{"detail": "<message>", "error_type": "<type>"}`` plus the ``X-Fal-Error-Type`` header.

::

    * GatewayError                  request error: status + error_type + message
      + InvalidRequest (422)        body fails the endpoint schema: fal's detail-list shape
      + Unauthorized (401)          missing, malformed or unknown key
      + Forbidden (403)
        - PolicyDenied (403)        the request is outside the tenant's policy; the body names the rule
      + NotFound (404)              unknown endpoint, unknown request id, another tenant's request id
      + BadRequest (400)
      + BudgetExceeded (402)        the request's estimate does not fit the tenant's budget; the body says why
      + Conflict (409)
      + PayloadTooLarge (413)
      + TooManyRequests (429)       rate or concurrency limit, or too many failed authentications; Retry-After
      + ServiceUnavailable (503)    the gateway's own state store (Redis) is unreachable
      + GatewayTimeout (504)        a ``/run`` call outlived the gateway's run timeout; the request is still tracked
      + UpstreamError               fal failed or could not be reached
        - UpstreamUnavailable (502/503)
          - RequestNotSent (503)    never reached fal, so safe to retry even a submit (``service/upstream/fal.py``)
            - UpstreamCircuitOpen   503 ``upstream_circuit_open`` + Retry-After: the operation's breaker is open (ditto)
        - UpstreamTimeout (504)
        - UpstreamRejected          fal answered with an error we pass through (status and body as fal sent them)

Every attribute is given at construction, never assigned afterwards: ``status_code=`` and ``error_type=`` override
the class's (``GatewayError(detail, status_code=405, error_type="method_not_allowed")``; a submit fal may or may not
have accepted is ``UpstreamTimeout(message, error_type="upstream_submit_unknown")``).

Every exception is answered through ``EXCEPTION_TABLE`` (``to_gateway_error``), looked up along the exception's
MRO so that the most specific row wins; a conversion builds a new error, never changing the exception it is given::

    GatewayError                    itself
    redis RedisError                ServiceUnavailable (503, state_store_unavailable), e.g. ConnectionError
    litestar ValidationException    InvalidRequest (422): Litestar's validation errors as fal's detail list
    litestar NotFoundException      NotFound (404)
    litestar HTTPException          PayloadTooLarge (413), InvalidRequest (422) if the body does not decode, else as is
    RecursionError                  InvalidRequest (422 json_invalid): a body nested too deep to decode
    Exception                       GatewayError (500, internal_error)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from litestar.exceptions import HTTPException, NotFoundException, SerializationException, ValidationException
from redis.exceptions import RedisError

from service.error_mapping import json_invalid_detail, litestar_validation_detail, too_deep_detail


class GatewayError(Exception):
    """Base of every error the gateway turns into an HTTP response."""

    status_code: int = 500
    error_type: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if error_type is not None:
            self.error_type = error_type
        self.headers = dict(headers or {})

    def body(self) -> Any:
        return {"detail": self.message, "error_type": self.error_type}

    def response_headers(self) -> dict[str, str]:
        return {"X-Fal-Error-Type": self.error_type, **self.headers}


class InvalidRequest(GatewayError):
    """422 with FastAPI's detail list, exactly as a fal app would answer."""

    status_code = 422
    error_type = "validation_error"

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__("Request validation failed")
        self.detail = detail

    def body(self) -> Any:
        return {"detail": self.detail}

    def response_headers(self) -> dict[str, str]:
        return dict(self.headers)


class Unauthorized(GatewayError):
    status_code = 401
    error_type = "unauthorized"


class Forbidden(GatewayError):
    status_code = 403
    error_type = "forbidden"


class PolicyDenied(Forbidden):
    """A request outside the tenant's policy. The body names the rule (and the input field, when there is one)."""

    error_type = "policy_violation"

    def __init__(self, rule: str, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{message} (policy: {rule})")
        self.rule = rule
        self.field = field

    def body(self) -> Any:
        body = {"detail": self.message, "error_type": self.error_type, "rule": self.rule}
        if self.field is not None:
            body["field"] = self.field
        return body


class BudgetExceeded(GatewayError):
    """402: spent + reserved + this request's estimate would exceed the limit. Nothing was reserved or sent."""

    status_code = 402
    error_type = "budget_exceeded"

    def __init__(self, *, limit: int, spent: int, reserved: int, estimate: int, period_end: str | None) -> None:
        remaining = max(0, limit - spent - reserved)
        super().__init__(
            f"Budget exceeded: this request's estimate of {estimate} micro-USD does not fit the remaining "
            f"{remaining} of {limit} (spent {spent}, reserved {reserved})"
        )
        self.amounts = {
            "limit_micros": limit,
            "spent_micros": spent,
            "reserved_micros": reserved,
            "estimate_micros": estimate,
            "remaining_micros": remaining,
            "period_end": period_end,
        }

    def body(self) -> Any:
        return {"detail": self.message, "error_type": self.error_type, **self.amounts}


class NotFound(GatewayError):
    status_code = 404
    error_type = "not_found"


class BadRequest(GatewayError):
    status_code = 400
    error_type = "bad_request"


class Conflict(GatewayError):
    status_code = 409
    error_type = "conflict"


class PayloadTooLarge(GatewayError):
    status_code = 413
    error_type = "payload_too_large"


class TooManyRequests(GatewayError):
    """429 with ``Retry-After`` (whole seconds, at least 1), which both official clients honour by backing off."""

    status_code = 429
    error_type = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, rule: str, error_type: str | None = None) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(message, error_type=error_type, headers={"Retry-After": str(seconds)})
        self.rule = rule
        self.retry_after = seconds

    def body(self) -> Any:
        return {**super().body(), "rule": self.rule, "retry_after": self.retry_after}


class ServiceUnavailable(GatewayError):
    status_code = 503
    error_type = "service_unavailable"


class GatewayTimeout(GatewayError):
    """504 for a ``/run`` call that outlived the run timeout; the request is still tracked, its result in the queue."""

    status_code = 504
    error_type = "request_timeout"


class UpstreamError(GatewayError):
    status_code = 502
    error_type = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    def __init__(self, message: str, *, status_code: int = 502, error_type: str = "upstream_unavailable") -> None:
        super().__init__(message, status_code=status_code, error_type=error_type)


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error_type = "upstream_timeout"


class UpstreamRejected(UpstreamError):
    """fal answered with an error status whose body is passed through as fal sent it."""

    def __init__(
        self, status_code: int, payload: Any, *, error_type: str | None = None, timeout_type: str | None = None
    ) -> None:
        message = payload.get("detail") if isinstance(payload, dict) else None
        text = str(message) if isinstance(message, str) else f"Upstream returned {status_code}"
        super().__init__(text, status_code=status_code)
        self.payload = payload
        self.upstream_error_type = error_type
        self.timeout_type = timeout_type  # fal's X-Fal-Request-Timeout-Type

    def body(self) -> Any:
        return self.payload

    def response_headers(self) -> dict[str, str]:
        return {"X-Fal-Error-Type": self.upstream_error_type} if self.upstream_error_type else {}


# --- the table: any exception -> the gateway error it is answered with ---------------------------------------------


def _itself(exc: GatewayError) -> GatewayError:
    return exc


def _state_store_unavailable(_: RedisError) -> GatewayError:
    return ServiceUnavailable(
        "The gateway's state store (Redis) is unavailable; nothing was sent upstream",
        error_type="state_store_unavailable",
    )


def _invalid_request(exc: ValidationException) -> GatewayError:
    return InvalidRequest(litestar_validation_detail(exc))


def _not_found(_: NotFoundException) -> GatewayError:
    return NotFound("Not found")


def _http_error(exc: HTTPException) -> GatewayError:
    if exc.status_code == 413:
        return PayloadTooLarge("Request body is too large")
    if isinstance(exc.__cause__, SerializationException):  # a JSON body that does not decode: as fal's apps answer
        return InvalidRequest(json_invalid_detail(str(exc.__cause__)))
    return GatewayError(exc.detail, status_code=exc.status_code, error_type=_http_error_type(exc.status_code))


def _internal_error(_: Exception) -> GatewayError:
    return GatewayError("Internal server error", error_type="internal_error")


def _http_error_type(status_code: int) -> str:
    known = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 405: "method_not_allowed", 429: "rate_limited"}
    return known.get(status_code, "internal_error" if status_code >= 500 else "bad_request")


# Each converter takes an instance of its row's class (``Any`` here: a mapping cannot tie a key's type to its value's).
Converter = Callable[[Any], GatewayError]

EXCEPTION_TABLE: Mapping[type[Exception], Converter] = MappingProxyType(
    {
        GatewayError: _itself,
        RedisError: _state_store_unavailable,
        ValidationException: _invalid_request,
        NotFoundException: _not_found,
        HTTPException: _http_error,
        RecursionError: lambda _: InvalidRequest(too_deep_detail()),
        Exception: _internal_error,
    }
)


def to_gateway_error(exc: Exception) -> GatewayError:
    """The gateway error ``exc`` is answered with: the row of its most specific class in ``EXCEPTION_TABLE``."""
    converter = next(EXCEPTION_TABLE[cls] for cls in type(exc).__mro__ if cls in EXCEPTION_TABLE)
    return converter(exc)
