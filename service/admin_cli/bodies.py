"""Command-line values to admin API bodies: ``--set`` paths, ``--meta``, policy flags, durations, times, pages."""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from service.domain.paging import parse_cursor

POLICY_FLAGS = (
    "allowed_endpoints",
    "max_resolution",
    "max_duration",
    "allow_audio",
    "requests_per_minute",
    "max_concurrent",
)
BUDGET_FLAGS = {
    "budget_limit_usd": "limit_micros",
    "budget_soft_limit_usd": "soft_limit_micros",
    "budget_period": "period",
}
MAX_PAGE = 500  # the gateway's largest page of webhook deliveries
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_PART = re.compile(r"(\d+)([smhdw])")


class UsageError(Exception):
    """A mistake on the command line (exit status 2)."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """One ``--set PATH=JSON``: a dotted path into the body and the JSON value to put there (null removes)."""

    path: tuple[str, ...]
    value: Any


def assignment(text: str) -> Assignment:
    """argparse type of ``--set``."""
    path, sep, raw = text.partition("=")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"expected PATH=JSON (e.g. policy.max_duration=8), got {text!r}")
    parts = tuple(path.split("."))
    if not all(parts):
        raise argparse.ArgumentTypeError(f"empty name in path {path!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"the value of {path} is not JSON: {raw!r} (quote strings: {path}='\"{raw}\"'; null removes the field)"
        ) from None
    return Assignment(parts, value)


def usd_micros(text: str) -> int:
    """argparse type of a USD amount (``50``, ``12.5``, ``0.000001``), converted exactly to integer micro-USD."""
    try:
        amount = Decimal(text.strip().removeprefix("$"))
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a USD amount: {text!r}") from None
    micros = amount * 1_000_000
    if not amount.is_finite() or micros < 0 or micros != micros.to_integral_value():
        raise argparse.ArgumentTypeError(f"not a non-negative USD amount with at most 6 decimals: {text!r}")
    return int(micros)


def meta(text: str) -> tuple[str, str]:
    """argparse type of ``--meta KEY=VALUE`` (the value is a string; remove a key with --set metadata.KEY=null)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def duration(text: str) -> int:
    """argparse type of a duration in seconds: ``3600``, ``45s``, ``30m``, ``1h``, ``2d``, ``1w`` or ``1h30m``."""
    seconds = _duration_seconds(text.strip().lower(), bare_number=True)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use seconds, or e.g. 30m, 1h, 2d, 1h30m)")
    return seconds


def expiry(text: str) -> str:
    """argparse type of ``--expires-at``: ISO 8601 (no offset means local time) or a duration from now (``90d``).

    Returns an ISO 8601 timestamp with an explicit offset, so the gateway never guesses the time zone.
    """
    seconds = _duration_seconds(text.strip().lower(), bare_number=False)
    if seconds is not None:
        moment = datetime.now(UTC) + timedelta(seconds=seconds)
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not an ISO 8601 time or a duration: {text!r} (e.g. 2026-01-31T00:00:00Z or 90d)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.astimezone()
    return moment.isoformat().replace("+00:00", "Z")


def since(text: str) -> str:
    """argparse type of ``--since``: ISO 8601 (no offset means local time) or a duration ago (``24h``).

    Returns an ISO 8601 timestamp with an explicit offset, like :func:`expiry`.
    """
    seconds = _duration_seconds(text.strip().lower(), bare_number=False)
    if seconds is None:
        return expiry(text)
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=seconds)
    return moment.isoformat().replace("+00:00", "Z")


def page_size(text: str) -> int:
    """argparse type of ``--limit``: 1 to :data:`MAX_PAGE` (the gateway's largest page)."""
    number = _whole_number(text)
    if number is None or not 1 <= number <= MAX_PAGE:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_PAGE}, got {text!r}")
    return number


def cursor(text: str) -> str:
    """argparse type of ``--before``: the cursor a listing printed (``<ms>:<id>``), or a time in milliseconds."""
    if parse_cursor(text.strip()) is None:
        raise argparse.ArgumentTypeError(f"not a cursor: {text!r} (pass the cursor a listing printed)")
    return text.strip()


def _whole_number(text: str) -> int | None:
    digits = text.strip()
    return int(digits) if digits.isascii() and digits.isdigit() else None


def _duration_seconds(text: str, *, bare_number: bool) -> int | None:
    if text.isdigit():
        return int(text) if bare_number else None
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(int(number) * _UNITS[unit] for number, unit in parts)


def set_path(body: dict[str, Any], path: Sequence[str], value: Any) -> None:
    """Put ``value`` at ``path`` in ``body``, creating objects on the way (a null on the way becomes an object)."""
    node = body
    for depth, name in enumerate(path[:-1]):
        child = node.get(name)
        if child is None:
            child = node[name] = {}
        elif not isinstance(child, dict):
            prefix = ".".join(path[: depth + 1])
            raise UsageError(f"cannot set {'.'.join(path)}: {prefix} is {json.dumps(child)}, not an object")
        node = child
    node[path[-1]] = value


def tenant_body(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    """A tenant body (create) or merge patch (update) from ``base`` plus the flags given, applied in this order:
    --from-json, the named flags, then each --set (so --set can override or remove anything)."""
    body = copy.deepcopy(base)
    if args.name is not None:
        body["name"] = args.name
    if args.disabled is not None:
        body["disabled"] = args.disabled
    if getattr(args, "sandbox", None) is not None:
        body["sandbox"] = args.sandbox
    for field in POLICY_FLAGS:
        value = getattr(args, field)
        if value is not None:
            set_path(body, ("policy", field), value)
    for flag, field in BUDGET_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            set_path(body, ("budget", field), value)
    if getattr(args, "no_budget", False):
        body["budget"] = None
    for key, value in args.meta or ():
        set_path(body, ("metadata", key), value)
    for item in args.set or ():
        set_path(body, item.path, item.value)
    return body


def load_json_object(source: str | None) -> dict[str, Any]:
    """The JSON object in file ``source`` (``-``: standard input), or {} without a source."""
    if source is None:
        return {}
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{'standard input' if source == '-' else source} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{'standard input' if source == '-' else source} must hold a JSON object")
    return value
