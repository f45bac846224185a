"""What the request log line and metrics learn from deep inside a request: its time spent waiting on fal (so the
rest is the gateway's own) and facts such as its endpoint, cache outcome and cost.

The request middleware opens a tally per request (a context variable, which the handler and the calls it awaits
share); the upstream client adds the duration of each call to fal, the submit pipeline notes its facts. Tasks
started during a request inherit the tally; background loops, started outside any request, have none and add
nothing.
"""

from __future__ import annotations

from contextvars import ContextVar


class Tally:
    __slots__ = ("facts", "upstream_seconds")

    def __init__(self) -> None:
        self.upstream_seconds = 0.0
        self.facts: dict[str, object] = {}


_current: ContextVar[Tally | None] = ContextVar("gateway_request_tally", default=None)


def open_tally() -> Tally:
    tally = Tally()
    _current.set(tally)
    return tally


def add_upstream(seconds: float) -> None:
    tally = _current.get()
    if tally is not None:
        tally.upstream_seconds += seconds


def note(**facts: object) -> None:
    """Facts for the request's log line (endpoint_id, cache, cost_micros)."""
    tally = _current.get()
    if tally is not None:
        tally.facts.update(facts)
