"""A simulated fal queue job: its planned outcome, its lifecycle (derived from timestamps on every read), its output."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from service.domain.endpoints import Endpoint
from service.simulator.media import MEDIA_TYPE, media_size


class Phase(StrEnum):
    """fal's only three queue statuses: failures and cancellations are COMPLETED too (docs/protocol.md §5.2)."""

    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"


@dataclass(frozen=True, slots=True)
class Success:
    """A generated video: which bundled file stands in for it, and the seed it reports."""

    media_name: str
    seed: int


@dataclass(frozen=True, slots=True)
class Failure:
    """A completed-with-error job: the result endpoint answers ``status``/``body``, the status shows the rest."""

    status: int
    body: Any
    error: str
    error_type: str
    timeout_type: str | None = None  # X-Fal-Request-Timeout-Type of the result: "user" for a start timeout


CANCELLED = Failure(
    # [UNCERTAIN] fal documents no result body for a cancelled request; 499 client_cancelled is the matching row of
    # fal's error_type table (docs/protocol.md §6.1).
    status=499,
    body={"detail": "Request was cancelled", "error_type": "client_cancelled"},
    error="Request was cancelled",
    error_type="client_cancelled",
)


START_TIMED_OUT = Failure(
    # A job still queued when the submit's X-Fal-Request-Timeout ran out (docs/protocol.md §10); the body and
    # error_type are [UNCERTAIN]: fal documents the 504 and its X-Fal-Request-Timeout-Type header only.
    status=504,
    body={"detail": "Request timed out", "error_type": "request_timeout"},
    error="Request timed out",
    error_type="request_timeout",
    timeout_type="user",
)


@dataclass(frozen=True, slots=True)
class LogLine:
    message: str
    at: float  # on the simulator's clock


@dataclass(slots=True)
class Job:
    """One submitted request. Timing values are copied from the config at submit time, so later changes to the
    config do not move jobs that are already running.
    """

    id: str
    seq: int
    endpoint: Endpoint
    raw_input: Any
    outcome: Success | Failure
    submitted_at: float
    queue_seconds: float
    processing_seconds: float
    log_lines: int
    media_base_url: str | None
    cancelled_at: float | None = None
    calls: dict[str, int] = field(default_factory=lambda: {"status": 0, "result": 0, "cancel": 0})

    @property
    def started_at(self) -> float:
        return self.submitted_at + self.queue_seconds

    @property
    def finished_at(self) -> float:
        return self.started_at + self.processing_seconds

    @property
    def ended_at(self) -> float:
        """When the job reached COMPLETED: when it finished, or when it was cancelled before that."""
        return self.finished_at if self.cancelled_at is None else self.cancelled_at

    def phase(self, now: float) -> Phase:
        if self.cancelled_at is not None or now >= self.finished_at:
            return Phase.COMPLETED
        if now >= self.started_at:
            return Phase.IN_PROGRESS
        return Phase.IN_QUEUE

    def result(self, now: float) -> Success | Failure | None:
        """How the job ended, or None while it is still queued or running."""
        if self.cancelled_at is not None:
            return CANCELLED
        return self.outcome if now >= self.finished_at else None

    def logs(self, now: float) -> list[LogLine]:
        """Progress messages visible at ``now``: line k of n appears at k/n of the processing time."""
        visible_until = now if self.cancelled_at is None else min(now, self.cancelled_at)
        lines: list[LogLine] = []
        for k in range(1, self.log_lines + 1):
            at = self.started_at + self.processing_seconds * k / self.log_lines
            if at > visible_until:
                break
            lines.append(LogLine(f"Generating video: step {k}/{self.log_lines}", at))
        return lines

    def cancel(self, now: float) -> bool:
        """Cancel the job if it has not completed yet; returns whether it was cancelled."""
        if self.phase(now) is Phase.COMPLETED:
            return False
        self.cancelled_at = now
        return True


def output_body(job: Job, outcome: Success, base: str) -> dict[str, Any]:
    """Seedance's output schema (docs/protocol.md §11) pointing at the bundled stand-in video."""
    media_base = (job.media_base_url or base).rstrip("/")
    video = {
        "url": f"{media_base}/media/{outcome.media_name}",
        "content_type": MEDIA_TYPE,
        "file_name": "output.mp4",
        "file_size": media_size(outcome.media_name),
    }
    return {"video": video, "seed": outcome.seed}
