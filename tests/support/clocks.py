"""Injectable clocks: wall time a test can shift or freeze, and a clock that moves only when a test says so."""

from __future__ import annotations

import time


class ShiftableClock:
    """Wall-clock time plus an offset a test can move forward (key expiry, grace periods) without sleeping; frozen,
    it stands still so that durations computed from it (Retry-After) are exact."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.frozen_at: float | None = None

    def __call__(self) -> float:
        return time.time() + self.offset if self.frozen_at is None else self.frozen_at

    def advance(self, seconds: float) -> None:
        if self.frozen_at is None:
            self.offset += seconds
        else:
            self.frozen_at += seconds

    def freeze(self, at: float | None = None) -> None:
        """Stop the clock, at ``at`` (epoch seconds) or now."""
        self.frozen_at = self() if at is None else at


class ManualClock:
    """A clock that only moves when a test says so."""

    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
