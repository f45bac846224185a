"""The simulator's mutable world: config, jobs, armed faults, webhooks and statistics, on an injectable clock."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.domain.endpoints import Endpoint
from service.domain.schemas import InvalidInputError, TextToVideoInput, parse_input
from service.simulator.faults import CallOp, FaultBook, FaultRule
from service.simulator.jobs import START_TIMED_OUT, Failure, Job, Phase, Success
from service.simulator.media import media_name
from service.simulator.webhooks import Sender, WebhookOutbox, key_from_seed, public_jwk

logger = structlog.get_logger(__name__)

CALL_OPS: tuple[CallOp, ...] = ("submit", "status", "result", "cancel")


SWEEP_INTERVAL_SECONDS = 1.0


class SimulatorConfig(BaseModel):
    """Knobs of the simulator; the values in force when a job is submitted apply to that job for its whole life."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    queue_seconds: float = Field(default=1.0, ge=0.0)
    processing_seconds: float = Field(default=4.0, ge=0.0)
    log_lines: int = Field(default=5, ge=0)
    fal_key: str | None = Field(
        default=None, repr=False, description="When set, only `Authorization: Key <fal_key>` is accepted."
    )
    retention_seconds: float = Field(default=3600.0, gt=0, description="How long finished jobs are remembered.")
    media_base_url: str | None = Field(
        default=None, description="Base URL of output video URLs; default: the base URL of the incoming request."
    )
    webhook_user_id: str = Field(default="simulator-user", pattern=r"^\S+$", description="X-Fal-Webhook-User-Id.")
    webhook_signing_seed: str | None = Field(
        default=None,
        repr=False,
        description="Base64url 32-byte Ed25519 seed that signs webhooks; default: a key made per SimulatorState.",
    )
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, description="How long a webhook receiver may take.")

    @field_validator("webhook_signing_seed")
    @classmethod
    def _seed_makes_a_key(cls, seed: str | None) -> str | None:
        if seed is not None:
            key_from_seed(seed)
        return seed

    def public_view(self) -> dict[str, Any]:
        """The config as the unauthenticated control API may show it: secrets are never echoed."""
        return {
            **self.model_dump(mode="json"),
            "fal_key": None if self.fal_key is None else "***",
            "webhook_signing_seed": None if self.webhook_signing_seed is None else "***",
        }


class SimulatorState:
    """Everything the simulator app reads and writes. Tests drive it directly or through the ``/_sim`` API."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``webhook_transport`` (also settable later) carries the webhooks; by default they go to the network."""
        self._defaults = (config or SimulatorConfig()).model_copy()
        self.config = self._defaults.model_copy()
        self.clock = clock
        # Job timing runs on `clock` (monotonic), but log timestamps are wall times. Anchoring the offset once keeps
        # each log line's timestamp stable across polls, and a fake clock yields predictable timestamps.
        self._wall_offset = wall_clock() - clock()
        self.faults = FaultBook()
        self._jobs: dict[str, Job] = {}
        self._waiting: dict[str, Job] = {}  # the jobs that may still be in the queue (the others never are again)
        self._next_sweep = 0.0
        self._calls: dict[str, int] = dict.fromkeys(CALL_OPS, 0)
        self._seq = itertools.count()
        self.webhook_transport = webhook_transport
        self._webhooks = WebhookOutbox()
        self._own_key = Ed25519PrivateKey.generate()

    def configure(self, **fields: Any) -> SimulatorConfig:
        """Change some config fields; the whole result is validated before anything changes."""
        self.config = SimulatorConfig.model_validate({**self.config.model_dump(), **fields})
        return self.config

    def add_fault(self, rule: FaultRule) -> None:
        self.faults.add(rule)

    def reset(self) -> None:
        """Forget jobs, faults, webhooks and statistics, and go back to the config given at construction."""
        self.config = self._defaults.model_copy()
        self.faults.clear()
        self._jobs.clear()
        self._waiting.clear()
        self._webhooks.clear()
        self._calls = dict.fromkeys(CALL_OPS, 0)

    def wall_time(self, at: float) -> float:
        """The wall-clock time (epoch seconds) of an instant on the simulator clock."""
        return self._wall_offset + at

    def record_call(self, op: CallOp, job: Job | None) -> None:
        self._calls[op] += 1
        if job is not None and op in job.calls:
            job.calls[op] += 1

    def job(self, request_id: str) -> Job | None:
        return self._jobs.get(request_id)

    def adopt(self, job: Job) -> None:
        """Hold ``job`` (submitted to another simulator sharing this one's clock) as if submitted here."""
        job.seq = next(self._seq)
        self._jobs[job.id] = job

    def find(self, app: str, request_id: str) -> Job | None:
        """The job with this id, if it was submitted to an endpoint of ``app`` (``owner/alias``)."""
        job = self._jobs.get(request_id)
        return job if job is not None and job.endpoint.app == app else None

    def queue_position(self, job: Job, now: float) -> int:
        """How many jobs submitted before ``job`` are still waiting in the queue. Only the waiting jobs are looked at,
        so a submit costs the same however many jobs the simulator remembers."""
        self._waiting = {key: other for key, other in self._waiting.items() if other.phase(now) is Phase.IN_QUEUE}
        return sum(1 for other in self._waiting.values() if other.seq < job.seq)

    @property
    def webhook_key(self) -> Ed25519PrivateKey:
        """The key webhooks are signed with: the configured seed's, else the one made for this state."""
        seed = self.config.webhook_signing_seed
        return self._own_key if seed is None else key_from_seed(seed)

    def jwks(self) -> dict[str, Any]:
        """The public key set a receiver verifies webhooks against (served at ``/.well-known/jwks.json``)."""
        return {"keys": [public_jwk(self.webhook_key)]}

    async def deliver_due_webhooks(self) -> int:
        """Send every webhook due now on the simulator clock (first attempts and retries); returns how many."""
        config = self.config
        sender = Sender(
            clock=self.clock,
            wall_time=self.wall_time,
            key=self.webhook_key,
            user_id=config.webhook_user_id,
            faults=self.faults,
            transport=self.webhook_transport,
            timeout=config.webhook_timeout_seconds,
        )
        return await self._webhooks.deliver_due(sender)

    async def run_webhook_loop(self, interval: float = 0.02) -> None:
        """Deliver due webhooks every ``interval`` seconds of real time until cancelled (the app's lifespan runs it)."""
        while True:
            try:
                await self.deliver_due_webhooks()
            except Exception:  # the loop outlives any one round's failure
                logger.exception("simulator_webhook_round_failed")
            await asyncio.sleep(interval)

    def submit(
        self,
        endpoint: Endpoint,
        raw: bytes,
        *,
        webhook_url: str | None = None,
        base_url: str = "",
        start_timeout: float | None = None,
    ) -> Job:
        """Accept a job without judging its body, as fal's queue does: a bad body fails later, at run time.

        With ``webhook_url``, fal's webhook is sent there once the job completes; ``base_url`` (the submit's own)
        is the base of the output URLs it carries when no ``media_base_url`` is configured. ``start_timeout``
        (X-Fal-Request-Timeout) ends a job that would still be queued by then with a 504 start timeout.
        """
        config = self.config
        queue_seconds, processing_seconds, log_lines = config.queue_seconds, config.processing_seconds, config.log_lines
        outcome: Success | Failure
        if start_timeout is not None and queue_seconds > start_timeout:
            # It never reaches a runner: no processing, no logs, and no job fault is taken for it.
            outcome, queue_seconds, processing_seconds, log_lines = START_TIMED_OUT, start_timeout, 0.0, 0
        else:
            try:
                data = parse_input(endpoint, raw)
            except InvalidInputError as exc:
                outcome = Failure(422, {"detail": exc.detail}, "Invalid status code: 422", "validation_error")
                # The runner rejects the body before generating anything: no processing time, no progress logs.
                processing_seconds, log_lines = 0.0, 0
            else:
                outcome = self._run(endpoint, data)
        job = Job(
            id=str(uuid.uuid4()),
            seq=next(self._seq),
            endpoint=endpoint,
            raw_input=_decode(raw),
            outcome=outcome,
            submitted_at=self.clock(),
            queue_seconds=queue_seconds,
            processing_seconds=processing_seconds,
            log_lines=log_lines,
            media_base_url=config.media_base_url,
        )
        self._jobs[job.id] = job
        self._waiting[job.id] = job
        if webhook_url is not None:
            self._webhooks.add(job, webhook_url, base_url)
        self._forget_old(job.submitted_at)
        return job

    def _forget_old(self, now: float) -> None:
        """Drop jobs finished more than ``retention_seconds`` ago, so a long-running simulator has bounded memory
        (fal forgets requests too; asking about a forgotten one is a 404, as for an unknown id). At most once a
        second: a sweep looks at every job."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL_SECONDS
        horizon = now - self.config.retention_seconds
        stale = [job_id for job_id, job in self._jobs.items() if job.ended_at < horizon]
        for job_id in stale:
            del self._jobs[job_id]

    def _run(self, endpoint: Endpoint, data: TextToVideoInput) -> Success | Failure:
        """What the model will produce for a valid input; a rejected body never reaches this, nor its faults."""
        rule = self.faults.take("job", endpoint.id)
        if rule is not None:
            return Failure(rule.status, rule.error_body(), f"Invalid status code: {rule.status}", rule.error_type())
        seed = data.seed if data.seed is not None and data.is_seeded else secrets.randbelow(2**31)
        return Success(media_name(data.resolution, data.aspect_ratio), seed)

    def stats(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "calls": dict(self._calls),
            "requests": {
                job.id: {
                    "endpoint_id": job.endpoint.id,
                    "status_calls": job.calls["status"],
                    "result_calls": job.calls["result"],
                    "cancel_calls": job.calls["cancel"],
                    "state": job.phase(now).value,
                    "input": job.raw_input,
                }
                for job in self._jobs.values()
            },
            "webhooks": list(self._webhooks.deliveries),
            "webhooks_pending": self._webhooks.pending,
        }


def _decode(raw: bytes) -> Any:
    """The submitted body as JSON for the statistics; None when it is not JSON at all."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
