"""The circuit breaker state machine, the retry backoff and what counts as a failure, on a hand-driven clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from service.errors import UpstreamError, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from service.upstream.breaker import (
    STATE_VALUES,
    Backoff,
    BreakerPolicy,
    CircuitBreaker,
    CircuitState,
    Permit,
    failure_reason,
    guarded,
)
from service.upstream.fal import RequestNotSent, UpstreamCircuitOpen
from tests.support.clocks import ManualClock

CLOSED, HALF_OPEN, OPEN = CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN


class Rig:
    """A breaker on a manual clock that records every transition it reports."""

    def __init__(self, **policy: Any) -> None:
        self.clock = ManualClock(1000.0)
        self.moves: list[tuple[CircuitState, CircuitState]] = []
        self.breaker = CircuitBreaker(
            BreakerPolicy(**policy), clock=self.clock, on_transition=lambda a, b: self.moves.append((a, b))
        )

    def permit(self) -> Permit:
        permit = self.breaker.acquire()
        assert permit is not None, f"refused while {self.breaker.state}"
        return permit

    def fail(self, times: int = 1) -> None:
        for _ in range(times):
            self.breaker.failed(self.permit())

    def succeed(self) -> None:
        self.breaker.succeeded(self.permit())

    def opened(self, failures: int = 5) -> Rig:
        self.fail(failures)
        assert self.breaker.state is OPEN
        return self


def test_a_new_breaker_is_closed_and_lets_calls_through() -> None:
    rig = Rig()
    assert (rig.breaker.state, rig.breaker.allows(), rig.breaker.retry_in()) == (CLOSED, True, 0.0)
    assert rig.permit() == Permit(generation=0, probe=False)
    assert rig.moves == []


def test_it_opens_on_the_nth_consecutive_failure_a_success_or_release_between_resetting_or_keeping_the_count() -> None:
    rig = Rig(failures=3)
    rig.fail(2)
    rig.succeed()
    rig.fail(2)
    rig.breaker.released(rig.permit())
    assert rig.breaker.state is CLOSED, "a success resets the count; a release neither resets nor adds"
    rig.fail()
    assert rig.breaker.state is OPEN
    assert rig.moves == [(CLOSED, OPEN)]


def test_while_open_calls_fail_fast_until_the_cool_down_is_over() -> None:
    rig = Rig().opened()
    assert (rig.breaker.acquire(), rig.breaker.allows(), rig.breaker.retry_in()) == (None, False, 10.0)
    rig.clock.advance(9.5)
    assert rig.breaker.acquire() is None
    assert rig.breaker.retry_in() == pytest.approx(0.5)
    rig.clock.advance(0.5)
    assert (rig.breaker.state, rig.breaker.retry_in()) == (HALF_OPEN, 0.0)
    assert rig.moves == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_half_open_lets_the_allowed_number_of_probes_through_at_once_and_allows_takes_none() -> None:
    rig = Rig(probes=2).opened()
    rig.clock.advance(10)
    assert rig.breaker.allows()
    assert rig.breaker.allows()
    assert [rig.permit().probe, rig.permit().probe] == [True, True]
    assert (rig.breaker.acquire(), rig.breaker.allows()) == (None, False), "both probe slots are taken"
    assert rig.breaker.state is HALF_OPEN


def test_a_successful_probe_closes_the_breaker_and_it_counts_afresh() -> None:
    rig = Rig().opened()
    rig.clock.advance(10)
    probe = rig.permit()
    assert rig.breaker.acquire() is None
    rig.breaker.succeeded(probe)
    assert rig.breaker.state is CLOSED
    assert rig.moves == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    rig.fail(4)
    assert rig.breaker.state is CLOSED, "the failures before it opened are forgotten"


@pytest.mark.parametrize(("cap", "expected"), [(35, [20, 35, 35]), (1, [10, 10, 10]), (120, [20, 40, 80])])
def test_a_failed_probe_reopens_it_for_a_growing_cool_down_up_to_the_cap(cap: float, expected: list[float]) -> None:
    rig = Rig(cooldown_seconds=10, max_cooldown_seconds=cap).opened()
    cooldowns = []
    for _ in expected:
        rig.clock.advance(rig.breaker.retry_in())
        rig.breaker.failed(rig.permit())
        assert rig.breaker.state is OPEN
        cooldowns.append(rig.breaker.retry_in())
    assert cooldowns == expected, "never shorter than the base cool-down, never longer than the cap"
    rig.clock.advance(cooldowns[-1])
    rig.succeed()
    rig.opened()
    assert rig.breaker.retry_in() == 10, "closing resets the cool-down"


def test_a_probe_that_ends_without_a_verdict_gives_its_slot_back() -> None:
    rig = Rig().opened()
    rig.clock.advance(10)
    rig.breaker.released(rig.permit())
    assert rig.breaker.state is HALF_OPEN
    rig.succeed()
    assert rig.breaker.state is CLOSED


def test_verdicts_of_calls_let_through_before_a_transition_are_ignored() -> None:
    rig = Rig(failures=2)
    stale = [rig.permit() for _ in range(4)]
    rig.fail(2)
    assert rig.breaker.state is OPEN
    rig.breaker.succeeded(stale[0])
    assert rig.breaker.state is OPEN, "a call from before it opened does not close it"
    rig.clock.advance(10)
    probe = rig.permit()
    rig.breaker.failed(stale[1])
    rig.breaker.released(stale[2])
    assert rig.breaker.state is HALF_OPEN, "nor does one re-open it while half-open"
    rig.breaker.succeeded(probe)
    rig.breaker.failed(stale[3])
    rig.fail()
    assert rig.breaker.state is CLOSED, "nor count against it once closed again"


def test_the_verdict_of_a_second_probe_after_the_first_decided_is_ignored() -> None:
    rig = Rig(probes=2).opened()
    rig.clock.advance(10)
    first, second = rig.permit(), rig.permit()
    rig.breaker.failed(first)
    rig.breaker.succeeded(second)
    assert rig.breaker.state is OPEN
    assert rig.breaker.retry_in() == 20


def test_the_gauge_encoding() -> None:
    assert STATE_VALUES == {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
    assert [state.value for state in CircuitState] == ["closed", "half_open", "open"]


@pytest.mark.parametrize(
    "policy",
    [{"failures": 0}, {"probes": 0}, {"cooldown_seconds": 0}, {"cooldown_seconds": -1}, {"cooldown_seconds": 1e400}],
)
def test_a_policy_that_could_never_work_is_refused(policy: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="breaker"):
        BreakerPolicy(**policy)


# --- backoff -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry", "rand", "expected"),
    [(1, 0.0, 0.125), (1, 1.0, 0.25), (2, 0.0, 0.25), (2, 0.5, 0.375), (3, 1.0, 1.0), (5, 1.0, 2.0), (9, 0.0, 1.0)],
)
def test_backoff_doubles_with_jitter_between_half_and_all_of_it_capped(
    retry: int, rand: float, expected: float
) -> None:
    assert Backoff(attempts=10).delay(retry, rand=rand) == pytest.approx(expected)


@pytest.mark.parametrize(("retry_after", "expected"), [(3.0, 3.0), (0.0, 0.25), (3600.0, 5.0), (None, 0.25)])
def test_a_longer_retry_after_wins_up_to_its_cap(retry_after: float | None, expected: float) -> None:
    assert Backoff().delay(1, retry_after=retry_after, rand=1.0) == expected


def test_backoff_gives_up_when_the_attempts_are_used_or_the_wait_would_end_past_the_budget() -> None:
    backoff = Backoff(attempts=3)
    assert backoff.wait(1, elapsed=0, budget=30, rand=1.0) == 0.25
    assert backoff.wait(2, elapsed=0, budget=30, rand=1.0) == 0.5
    assert backoff.wait(3, elapsed=0, budget=30, rand=1.0) is None, "three attempts made"
    assert backoff.wait(1, elapsed=29.8, budget=30, rand=1.0) is None
    assert backoff.wait(1, elapsed=26, budget=30, retry_after=5, rand=1.0) is None
    assert backoff.wait(1, elapsed=24, budget=30, retry_after=5, rand=1.0) == 5
    with pytest.raises(ValueError, match="at least once"):
        Backoff(attempts=0)


# --- what counts as a failure --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "exc", "reason"),
    [
        ("status", UpstreamRejected(503, {"detail": "busy"}), "server_error"),
        ("submit", UpstreamRejected(500, {"detail": "boom"}), "server_error"),
        ("status", UpstreamRejected(429, {"detail": "slow down"}), "rate_limited"),
        ("result", UpstreamRejected(429, {"detail": "slow down"}), "rate_limited"),
        ("status", UpstreamUnavailable("fal returned HTTP 502"), "unavailable"),
        ("result", UpstreamUnavailable("fal returned HTTP 503", status_code=503), "unavailable"),
        ("status", RequestNotSent("refused", status_code=503), "unavailable"),
        ("cancel", UpstreamTimeout("slow"), "timeout"),
        ("status", UpstreamRejected(404, {"detail": "Request not found"}), None),
        ("submit", UpstreamRejected(422, {"detail": [{"msg": "bad"}]}), None),
        ("cancel", UpstreamRejected(400, {"status": "ALREADY_COMPLETED"}), None),
        ("status", UpstreamRejected(408, {"detail": "timeout"}), None),
        ("result", UpstreamRejected(500, {"detail": "GPU fell over"}), None),
        ("status", UpstreamUnavailable("bad key", error_type="upstream_auth_error"), None),
    ],
    ids=lambda v: getattr(v, "message", v),
)
def test_failures_are_transport_errors_timeouts_5xx_and_429_never_fals_answers(
    op: str, exc: UpstreamError, reason: str | None
) -> None:
    assert failure_reason(op, exc) == reason


def _guard(rig: Rig, op: str = "status") -> Any:
    return guarded(rig.breaker, op, UpstreamCircuitOpen)


def test_guarded_reports_each_outcome_once() -> None:
    rig = Rig(failures=2)
    with pytest.raises(UpstreamRejected), _guard(rig):
        raise UpstreamRejected(404, {"detail": "Request not found"})
    with pytest.raises(UpstreamTimeout), _guard(rig):
        raise UpstreamTimeout("slow")
    with _guard(rig):
        pass
    with pytest.raises(UpstreamTimeout), _guard(rig):
        raise UpstreamTimeout("slow")
    assert rig.breaker.state is CLOSED, "a success came between the two failures"
    with pytest.raises(UpstreamUnavailable), _guard(rig):
        raise UpstreamUnavailable("down")
    assert rig.breaker.state is OPEN


def test_guarded_refuses_while_open_without_running_the_block() -> None:
    rig = Rig().opened()
    ran = []
    with pytest.raises(UpstreamCircuitOpen) as refused, _guard(rig, "cancel"):
        ran.append(1)
    assert ran == []
    assert refused.value.op == "cancel"
    assert refused.value.retry_after == 10
    assert isinstance(refused.value, RequestNotSent)


def test_a_cancelled_probe_is_no_verdict() -> None:
    rig = Rig().opened()
    rig.clock.advance(10)
    for exc in (asyncio.CancelledError(), KeyError("bug")):
        with pytest.raises(type(exc)), _guard(rig):
            raise exc
        assert rig.breaker.state is HALF_OPEN
        assert rig.breaker.allows(), "the probe slot came back"


def test_the_circuit_open_error_renders_in_fals_request_error_shape() -> None:
    exc = UpstreamCircuitOpen("submit", 0.2)
    assert exc.status_code == 503
    assert exc.body() == {"detail": exc.message, "error_type": "upstream_circuit_open"}
    assert "nothing was sent" in exc.message
    assert exc.response_headers() == {"X-Fal-Error-Type": "upstream_circuit_open", "Retry-After": "1"}
    assert UpstreamCircuitOpen("status", 12.5).response_headers()["Retry-After"] == "13"
