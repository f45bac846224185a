"""fal's wire bodies as the gateway sends them (docs/protocol.md §5, §6.1): the queue statuses, the cancel answers
and the two error shapes. Only the OpenAPI documents use these models: the bodies themselves are built by
``service/domain/jobs.py`` and ``service/errors.py``, and the fuzz (``tests/api/test_fuzz.py``) checks every answer
against them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

# A field that may be absent but is never null: its schema says only what it is when present.
Absent = SkipJsonSchema[None]


class LogEntry(BaseModel):
    """One log line of a request, as fal reports it."""

    model_config = ConfigDict(extra="allow")

    message: str = Field(description="The log message.")
    level: str = Field(description="STDERR, STDOUT, ERROR, INFO, WARN or DEBUG.", examples=["INFO"])
    source: str = Field(description="Where the line comes from.", examples=["USER"])
    timestamp: str = Field(description="When the line was written (ISO 8601).")


class Metrics(BaseModel):
    """``{}``, except ``inference_time`` (seconds) on a request that fal reported it for."""

    model_config = ConfigDict(extra="allow")

    inference_time: float | Absent = Field(default=None, description="Seconds the model ran.")


class _Status(BaseModel):
    model_config = ConfigDict(extra="allow")

    request_id: str = Field(description="The request id.")
    response_url: str = Field(description="The result's URL (on the gateway).")
    status_url: str = Field(description="The status URL (on the gateway).")
    cancel_url: str = Field(description="The cancel URL (on the gateway).")
    logs: list[LogEntry] | None = Field(description="The logs: null unless asked for with logs=1 (or true).")
    metrics: Metrics = Field(description="The metrics.")
    gateway_request_id: str | Absent = Field(
        default=None, description="In the submit answer only: always equal to request_id."
    )


class InQueueStatus(_Status):
    """Waiting in the queue (also a request whose submit to fal is still in flight, at position 0)."""

    status: Literal["IN_QUEUE"]
    queue_position: int = Field(description="The position in the queue.", examples=[0])


class InProgressStatus(_Status):
    """Running."""

    status: Literal["IN_PROGRESS"]


class CompletedStatus(_Status):
    """Done. A failed or cancelled request is COMPLETED too, with ``error`` and ``error_type``."""

    status: Literal["COMPLETED"]
    error: str | Absent = Field(default=None, description="Why the request failed (failed requests only).")
    error_type: str | Absent = Field(
        default=None,
        description="fal's error type of the failure (failed requests only).",
        examples=["validation_error", "client_cancelled", "runner_server_error"],
    )


QueueStatus = Annotated[InQueueStatus | InProgressStatus | CompletedStatus, Field(discriminator="status")]


class CancellationRequested(BaseModel):
    status: Literal["CANCELLATION_REQUESTED"]


class AlreadyCompleted(BaseModel):
    status: Literal["ALREADY_COMPLETED"]


# --- errors -------------------------------------------------------------------------------------------------------


class ValidationErrorEntry(BaseModel):
    """One entry of fal's (FastAPI's) validation error list."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description="Where: the source (body, query) and the field's path.")
    msg: str = Field(description="What is wrong.")
    type: str = Field(description="The error type.", examples=["missing", "enum", "url_scheme"])
    input: Any | Absent = Field(default=None, description="The value given.")
    ctx: dict[str, Any] | Absent = Field(default=None, description="The error's parameters.")


class HTTPValidationError(BaseModel):
    """fal's 422 body: every problem found, each with its location."""

    detail: list[ValidationErrorEntry]


class RequestError(BaseModel):
    """fal's request error; the ``X-Fal-Error-Type`` header repeats ``error_type``."""

    model_config = ConfigDict(extra="allow")

    detail: str = Field(description="What went wrong.")
    error_type: str = Field(description="The error type.")


class ForbiddenError(RequestError):
    """``tenant_disabled``, a token of the other world, or ``policy_violation`` with the rule and the field."""

    rule: str | Absent = Field(default=None, description="policy_violation: the policy rule that refused it.")
    field: str | Absent = Field(default=None, description="policy_violation: the input field concerned.")


class BudgetExceededError(RequestError):
    """``budget_exceeded``: the request's estimate does not fit the remaining budget; nothing was reserved."""

    limit_micros: int
    spent_micros: int
    reserved_micros: int
    estimate_micros: int
    remaining_micros: int
    period_end: str | None = Field(description="When the period ends (ISO 8601); null for a total budget.")


class RateLimitedError(RequestError):
    """A limit was reached (``rate_limited``, ``auth_rate_limited``, ``replica_shutting_down``, ...); retry after
    ``retry_after`` seconds (also in ``Retry-After``). A 429 fal itself answered passes through as fal sent it."""

    rule: str | Absent = Field(default=None, description="The limit that was reached.")
    retry_after: int | Absent = Field(default=None, description="Seconds to wait before retrying.")


class AcceptedUnrecordedError(RequestError):
    """500 ``upstream_accepted_unrecorded``: fal has the request but the gateway could not record it yet; poll its
    status with ``request_id`` instead of submitting again. Any other 500 is ``internal_error``."""

    request_id: str | Absent = Field(default=None, description="The gateway's id of the request fal accepted.")


# The models besides the statuses (``QueueStatus`` is a union, not a model: see ``components.adapter_component``).
FAL_BODIES: tuple[type[BaseModel], ...] = (
    CancellationRequested,
    AlreadyCompleted,
    HTTPValidationError,
    RequestError,
    ForbiddenError,
    BudgetExceededError,
    RateLimitedError,
    AcceptedUnrecordedError,
)
