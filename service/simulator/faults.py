"""Fault rules that tests arm on the simulator, and the book that matches and consumes them per call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Op = Literal["submit", "status", "result", "cancel", "job", "webhook", "upload"]
CallOp = Literal["submit", "status", "result", "cancel"]
Kind = Literal["http_error", "timeout", "slow", "fail", "drop", "bad_signature", "stale", "duplicate"]
WebhookKind = Literal["drop", "bad_signature", "stale", "duplicate"]

CALL_KINDS: frozenset[Kind] = frozenset({"http_error", "timeout", "slow"})
KINDS_OF_OP: dict[Op, frozenset[Kind]] = {
    "submit": CALL_KINDS,
    "status": CALL_KINDS,
    "result": CALL_KINDS,
    "cancel": CALL_KINDS,
    "job": frozenset({"fail"}),
    "webhook": frozenset({"drop", "bad_signature", "stale", "duplicate"}),
    "upload": frozenset({"http_error"}),
}

DEFAULT_ERROR_BODY: dict[str, str] = {"detail": "Internal server error", "error_type": "runner_server_error"}


class FaultRule(BaseModel):
    """One fault: what it hits (``op``, optionally one ``endpoint_id``), what it does, and for how many calls.

    - ``http_error``: answer at once with ``status`` and ``body``.
    - ``timeout`` / ``slow``: do the call's work, then wait ``delay_seconds`` before answering. Both behave the
      same; the two names say what the test means (a caller-side timeout versus a slow upstream).
    - ``fail`` (``op="job"`` only): the next submitted jobs run normally but complete with this error.
    - ``op="webhook"``: the next webhooks to fire (a rule is taken by a webhook's first attempt and applies to all of
      its attempts). ``drop``: never sent; ``bad_signature``: signed with a key the JWKS does not list; ``stale``:
      timestamped 10 minutes in the past (and signed so); ``duplicate``: the same signed request is sent twice.
    - ``op="upload"`` (``http_error`` only): the next PUTs to an upload URL and CDN uploads are answered with
      ``status`` and nothing is stored.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: Op
    kind: Kind
    status: int = Field(default=500, ge=100, le=599)
    body: Any = None
    delay_seconds: float = Field(default=0.0, ge=0.0)
    times: int = Field(default=1, description="How many matching calls it applies to; 0 or negative: forever.")
    endpoint_id: str | None = None

    @model_validator(mode="after")
    def _kind_fits_op(self) -> Self:
        allowed = KINDS_OF_OP[self.op]
        if self.kind not in allowed:
            raise ValueError(f"op {self.op!r} does not support kind {self.kind!r}; it supports {sorted(allowed)}")
        return self

    def error_body(self) -> Any:
        return DEFAULT_ERROR_BODY if self.body is None else self.body

    def error_type(self) -> str:
        body = self.error_body()
        if isinstance(body, dict) and isinstance(body.get("error_type"), str):
            return str(body["error_type"])
        return "runner_server_error"

    def matches(self, op: Op, endpoint_id: str | None) -> bool:
        if op != self.op:
            return False
        return self.endpoint_id is None or (endpoint_id is not None and self.endpoint_id.strip("/") == endpoint_id)


@dataclass(slots=True)
class _Armed:
    rule: FaultRule
    remaining: int | None  # None: applies forever


class FaultBook:
    """Armed rules in the order they were added; the first one matching a call is consumed by it."""

    def __init__(self) -> None:
        self._armed: list[_Armed] = []

    def add(self, rule: FaultRule) -> None:
        self._armed.append(_Armed(rule, rule.times if rule.times > 0 else None))

    def clear(self) -> None:
        self._armed.clear()

    def take(self, op: Op, endpoint_id: str | None) -> FaultRule | None:
        """The rule that applies to this call, if any, counting the call against its ``times``."""
        for armed in self._armed:
            if not armed.rule.matches(op, endpoint_id):
                continue
            if armed.remaining is not None:
                armed.remaining -= 1
                if armed.remaining == 0:
                    self._armed.remove(armed)
            return armed.rule
        return None

    def snapshot(self) -> list[dict[str, Any]]:
        return [{**a.rule.model_dump(mode="json"), "remaining": a.remaining} for a in self._armed]
