"""The job record and how it is shown to fal clients (docs/protocol.md §5.1, §5.2).

Internally a job moves SUBMITTING -> IN_QUEUE -> IN_PROGRESS -> COMPLETED. SUBMITTING (accepted by the gateway,
upstream submit not yet confirmed) is shown as IN_QUEUE at position 0, because fal clients only know three statuses.
A failed or cancelled job is COMPLETED with ``error`` / ``error_type``, exactly as fal reports it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

import orjson


class JobState(StrEnum):
    SUBMITTING = "SUBMITTING"
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"


class Outcome(StrEnum):
    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"


class JobMode(StrEnum):
    QUEUE = "queue"
    RUN = "run"


@dataclass(slots=True)
class Job:
    """One accepted request. Stored as a Redis hash; complex fields are JSON-encoded."""

    request_id: str
    tenant_id: str
    endpoint_id: str
    mode: JobMode
    input: dict[str, Any]
    created_at: float
    state: JobState = JobState.SUBMITTING
    upstream_id: str | None = None
    queue_position: int | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    started_at: float | None = None
    completed_at: float | None = None
    outcome: Outcome | None = None
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    error_status: int | None = None
    error_body: Any = None
    error_timeout_type: str | None = None  # fal's X-Fal-Request-Timeout-Type of the failed result ("user")
    inference_time: float | None = None
    webhook_url: str | None = None
    upstream_webhook: bool = False  # fal was asked to call the gateway's receiver when the job ends
    tenant_uid: str | None = None
    sandbox: bool = False  # the tenant's sandbox flag when it was accepted: served by the sandbox simulator, unpaid
    estimate_micros: int | None = None
    cache_key: str | None = None
    cache_role: str | None = None  # hit, leader, follower or bypass
    cache_scope: str | None = None
    cache_ttl: int | None = None
    cache_generation: int | None = None  # the scope's purge generation the key was computed under
    leader_id: str | None = None  # a follower's leader, whose upstream job it shares
    detached: bool = False  # a leader cancelled by its client while others still follow its upstream job
    cancel_requested: bool = False
    settling: bool = False  # COMPLETED, but the completion's side effects are not all booked yet (not shown)
    polls: int = 0

    @property
    def done(self) -> bool:
        return self.state is JobState.COMPLETED

    def to_fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = json.dumps(value.value if isinstance(value, StrEnum) else value)
        return out

    @classmethod
    def from_fields(cls, raw: dict[str, str]) -> Job:
        values: dict[str, Any] = {name: _loads(text) for name, text in raw.items() if name in _FIELD_NAMES}
        values["mode"] = JobMode(values["mode"])
        values["state"] = JobState(values["state"])
        if values.get("outcome") is not None:
            values["outcome"] = Outcome(values["outcome"])
        return cls(**values)


_FIELD_NAMES = frozenset(f.name for f in fields(Job))


def encode_fields(values: dict[str, Any]) -> dict[str, str]:
    """Encode a partial update the same way :meth:`Job.to_fields` encodes a whole record."""
    return {k: json.dumps(v.value if isinstance(v, StrEnum) else v) for k, v in values.items() if k in _FIELD_NAMES}


CANCELLED_BODY = {"detail": "Request was cancelled", "error_type": "client_cancelled"}


def cancelled_fields() -> dict[str, Any]:
    """What a cancelled job records, as fal reports a cancellation: COMPLETED with error ``client_cancelled`` and
    499 from the result endpoint ([UNCERTAIN] in the spec; taken from fal's error-type table)."""
    return {
        "outcome": Outcome.CANCELLED,
        "error": CANCELLED_BODY["detail"],
        "error_type": CANCELLED_BODY["error_type"],
        "error_status": 499,
        "error_body": dict(CANCELLED_BODY),
    }


def as_clients_see(job: Job) -> Job:
    """A job whose completion is still being booked (charge, cache, followers, slot) shows as running, so whoever
    sees a job COMPLETED also sees it charged, cached and its slot free (docs/architecture.md)."""
    if not (job.done and job.settling):
        return job
    return replace(
        job,
        state=JobState.IN_PROGRESS,
        settling=False,
        outcome=None,
        result=None,
        error=None,
        error_type=None,
        error_status=None,
        error_body=None,
        completed_at=None,
    )


def failed_fields(status_code: int, message: str, error_type: str, body: Any = None) -> dict[str, Any]:
    """What a failed job records: fal's request-error body unless the failure brought its own (fal's, verbatim)."""
    return {
        "outcome": Outcome.ERROR,
        "error": message,
        "error_type": error_type,
        "error_status": status_code,
        "error_body": body if body is not None else {"detail": message, "error_type": error_type},
    }


@dataclass(frozen=True, slots=True)
class JobUrls:
    status_url: str
    response_url: str
    cancel_url: str


def job_urls(base_url: str, app: str, request_id: str) -> JobUrls:
    """Queue URLs use only ``owner/alias`` (docs/protocol.md §1.3)."""
    response_url = f"{base_url.rstrip('/')}/queue/{app}/requests/{request_id}"
    return JobUrls(status_url=f"{response_url}/status", response_url=response_url, cancel_url=f"{response_url}/cancel")


def status_payload(job: Job, urls: JobUrls, *, with_logs: bool) -> dict[str, Any]:
    """The body of ``GET .../status`` (also each SSE event), shaped so both official clients parse it."""
    status = JobState.IN_QUEUE if job.state is JobState.SUBMITTING else job.state
    body: dict[str, Any] = {
        "status": status.value,
        "request_id": job.request_id,
        "response_url": urls.response_url,
        "status_url": urls.status_url,
        "cancel_url": urls.cancel_url,
        "logs": list(job.logs) if with_logs else None,
        "metrics": {},
    }
    if status is JobState.IN_QUEUE:
        body["queue_position"] = job.queue_position or 0
    if job.done:
        if job.inference_time is not None:
            body["metrics"] = {"inference_time": job.inference_time}
        if job.outcome is not Outcome.OK:
            body["error"] = job.error or "Request failed"
            body["error_type"] = job.error_type or "internal_error"
    return body


def submit_payload(job: Job, urls: JobUrls) -> dict[str, Any]:
    """The body of a successful queue submit (fal answers 200 with the job in IN_QUEUE)."""
    body = status_payload(job, urls, with_logs=False)
    body["gateway_request_id"] = job.request_id
    return body


def poll_delay(polls_in_state: int, *, initial: float, backoff: float, maximum: float) -> float:
    """Seconds until the tracker's next upstream status call: exponential backoff, capped."""
    return float(min(maximum, initial * backoff ** max(0, polls_in_state)))


def _loads(text: str) -> Any:
    """A field as json.dumps wrote it. orjson reads it about four times faster (a status poll decodes every field)
    but refuses the escaped lone surrogates json.dumps writes for such prompts; those take json's way."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
