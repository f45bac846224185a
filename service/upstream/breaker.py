"""Circuit breakers for fal's operations, what counts as a failure, and the backoff between retries (no I/O)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from service.errors import UpstreamError, UpstreamRejected, UpstreamTimeout

OPERATIONS = ("submit", "status", "result", "cancel")  # one breaker per operation, per process
COOLDOWN_GROWTH = 2.0  # each failed probe multiplies the cool-down, up to the policy's cap
AUTH_ERROR_TYPE = "upstream_auth_error"  # fal refused the gateway's own key: fal answered, it is not failing


class CircuitState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


# How ``gateway_upstream_circuit_state`` encodes a state.
STATE_VALUES: dict[CircuitState, int] = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """``failures`` consecutive failures open a breaker for ``cooldown_seconds``; then ``probes`` calls at a time are
    let through (half-open). A successful probe closes it; a failed one re-opens it for a cool-down grown by
    ``COOLDOWN_GROWTH``, never longer than ``max_cooldown_seconds`` (nor shorter than ``cooldown_seconds``)."""

    failures: int = 5
    cooldown_seconds: float = 10.0
    max_cooldown_seconds: float = 120.0
    probes: int = 1

    def __post_init__(self) -> None:
        if self.failures < 1 or self.probes < 1:
            raise ValueError("a breaker needs at least one failure to open and one probe to close")
        if not (self.cooldown_seconds > 0 and math.isfinite(self.cooldown_seconds)):
            raise ValueError("a breaker's cool-down must be a positive number of seconds")

    def grown(self, cooldown: float) -> float:
        """The cool-down after a failed probe that followed a cool-down of ``cooldown``."""
        return max(self.cooldown_seconds, min(cooldown * COOLDOWN_GROWTH, self.max_cooldown_seconds))


@dataclass(frozen=True, slots=True)
class Permit:
    """A call the breaker let through: the breaker's generation at that moment, and whether it is a half-open probe.

    Every transition starts a new generation, so the verdict of a call let through before it (still in flight when
    the breaker opened, say) is ignored: only calls of the current state decide the next one."""

    generation: int
    probe: bool


Transition = Callable[[CircuitState, CircuitState], None]


class CircuitBreaker:
    """closed -> (``failures`` consecutive failures) open -> (cool-down) half-open -> probe: closed, or open again.

    The owner asks ``acquire`` before each call (None: fail fast, send nothing) and reports how the call ended with
    ``succeeded``, ``failed`` or ``released`` (neither: e.g. cancelled). ``on_transition(before, after)`` is told of
    every change. The open -> half-open change happens when the breaker is next consulted after the cool-down."""

    def __init__(
        self, policy: BreakerPolicy, *, clock: Callable[[], float], on_transition: Transition | None = None
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._on_transition = on_transition
        self._state = CircuitState.CLOSED
        self._generation = 0
        self._failures = 0  # consecutive, while closed
        self._probes = 0  # in flight, while half-open
        self._cooldown = policy.cooldown_seconds
        self._opened_at = 0.0

    @property
    def state(self) -> CircuitState:
        self._tick()
        return self._state

    @property
    def cooldown_seconds(self) -> float:
        """The current (or, once closed, the next) cool-down."""
        return self._cooldown

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through; 0 when it is not open."""
        self._tick()
        if self._state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown - self._clock())

    def allows(self) -> bool:
        """Whether a call made now would be let through. Takes nothing (no probe slot)."""
        self._tick()
        if self._state is CircuitState.HALF_OPEN:
            return self._probes < self._policy.probes
        return self._state is CircuitState.CLOSED

    def acquire(self) -> Permit | None:
        """Let a call through (a probe while half-open), or None while open or while every probe slot is taken."""
        if not self.allows():
            return None
        probe = self._state is CircuitState.HALF_OPEN
        if probe:
            self._probes += 1
        return Permit(self._generation, probe)

    def succeeded(self, permit: Permit) -> None:
        if not self._current(permit):
            return
        if permit.probe:
            self._cooldown = self._policy.cooldown_seconds
            self._move(CircuitState.CLOSED)
        else:
            self._failures = 0

    def failed(self, permit: Permit) -> None:
        if not self._current(permit):
            return
        if permit.probe:
            self._open(self._policy.grown(self._cooldown))
            return
        self._failures += 1
        if self._failures >= self._policy.failures:
            self._open(self._policy.cooldown_seconds)

    def released(self, permit: Permit) -> None:
        """The call ended without a verdict: a probe gives its slot back, a closed call changes nothing."""
        if self._current(permit) and permit.probe:
            self._probes -= 1

    def _current(self, permit: Permit) -> bool:
        return permit.generation == self._generation

    def _tick(self) -> None:
        if self._state is CircuitState.OPEN and self._clock() >= self._opened_at + self._cooldown:
            self._move(CircuitState.HALF_OPEN)

    def _open(self, cooldown: float) -> None:
        self._cooldown = cooldown
        self._opened_at = self._clock()
        self._move(CircuitState.OPEN)

    def _move(self, to: CircuitState) -> None:
        before = self._state
        self._state = to
        self._generation += 1
        self._failures = 0
        self._probes = 0
        if self._on_transition is not None:
            self._on_transition(before, to)


@dataclass(frozen=True, slots=True)
class Backoff:
    """The waits between the attempts of one idempotent call: ``base_seconds`` doubling per retry up to
    ``max_seconds``, jittered to between half and all of that; fal's ``Retry-After`` wins when it asks for longer, up
    to ``retry_after_max_seconds``. ``attempts`` counts the first one."""

    attempts: int = 3
    base_seconds: float = 0.25
    max_seconds: float = 2.0
    retry_after_max_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a call is attempted at least once")

    def delay(self, retry: int, *, retry_after: float | None = None, rand: float = 1.0) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the second attempt); ``rand`` is uniform in [0, 1)."""
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** (retry - 1))
        delay = ceiling * (1 + rand) / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_max_seconds))
        return delay

    def wait(
        self, retry: int, *, elapsed: float, budget: float, retry_after: float | None = None, rand: float = 1.0
    ) -> float | None:
        """The wait before retry number ``retry`` of a call ``elapsed`` seconds old, or None to give up: the attempts
        are used up, or the wait would not end within ``budget`` seconds of the call's start."""
        if retry >= self.attempts:
            return None
        delay = self.delay(retry, retry_after=retry_after, rand=rand)
        return delay if elapsed + delay < budget else None


def failure_reason(op: str, exc: UpstreamError) -> str | None:
    """Why ``exc`` counts against fal's health (and may pass if tried again); None when it is fal's word on the request:
    any 4xx but 429 (404, 422, cancel's 400), fal refusing the gateway's key, and a result's own 5xx (the model's)."""
    if isinstance(exc, UpstreamRejected):
        if exc.status_code == 429:
            return "rate_limited"
        return "server_error" if exc.status_code >= 500 and op != "result" else None
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    return None if exc.error_type == AUTH_ERROR_TYPE else "unavailable"  # not reached, cut off, or a bare 5xx


@contextmanager
def guarded(breaker: CircuitBreaker, op: str, refuse: Callable[[str, float], Exception]) -> Iterator[None]:
    """Run the block as one call through ``breaker``: refused with ``refuse(op, seconds until a probe)`` while it is
    open, else reported once it ends (an upstream error as ``failure_reason`` judges it; anything else raised, such as
    a cancellation, as no verdict; a normal end as a success)."""
    permit = breaker.acquire()
    if permit is None:
        raise refuse(op, breaker.retry_in())
    try:
        yield
    except UpstreamError as exc:
        (breaker.failed if failure_reason(op, exc) else breaker.succeeded)(permit)
        raise
    except BaseException:
        breaker.released(permit)
        raise
    breaker.succeeded(permit)
