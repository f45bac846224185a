"""The value of fal's ``X-Fal-Request-Timeout`` submit header, checked as fal checks it (docs/protocol.md §10): a
deadline in seconds for the request to *start*, covering the queue and getting a runner."""

from __future__ import annotations

import math

START_TIMEOUT_HEADER = "x-fal-request-timeout"
TIMEOUT_TYPE_HEADER = "x-fal-request-timeout-type"
MIN_START_TIMEOUT_SECONDS = 0.1  # fal's documented minimum; the official clients refuse 1 s and less themselves
_SHOWN = 64  # at most this much of a bad value is quoted back


class InvalidStartTimeout(ValueError):
    """The header is not a number of seconds above fal's minimum: fal answers 400 ``bad_request``."""


def start_timeout(value: str | None) -> float | None:
    """The start deadline in seconds, or None without the header; :class:`InvalidStartTimeout` for a bad value."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= MIN_START_TIMEOUT_SECONDS:
        raise InvalidStartTimeout(
            f"Invalid X-Fal-Request-Timeout {value[:_SHOWN]!r}: a number of seconds above {MIN_START_TIMEOUT_SECONDS}"
        )
    return seconds
