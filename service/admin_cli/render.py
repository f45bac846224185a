"""What the CLI prints: aligned tables, field listings, raw JSON, and readable descriptions of API errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from service.admin_cli.client import ApiError

_POLICY_LABELS = {
    "requests_per_minute": "rpm",
    "max_concurrent": "concurrent",
    "max_resolution": "max_res",
    "max_duration": "max_dur",
    "allow_audio": "audio",
    "allowed_endpoints": "endpoints",
}


class Output:
    """Standard output for results, standard error for notes and errors (resolved when written, not at import)."""

    def __init__(self, *, as_json: bool, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.as_json = as_json
        self._out = out
        self._err = err

    def lines(self, lines: Iterable[str]) -> None:
        stream = self._out or sys.stdout
        for line in lines:
            stream.write(line + "\n")

    def line(self, text: str = "") -> None:
        self.lines([text])

    def note(self, text: str) -> None:
        (self._err or sys.stderr).write(text + "\n")

    def json(self, payload: Any) -> None:
        self.line(json.dumps(payload, indent=2, ensure_ascii=False))

    def prompt(self, text: str) -> None:
        stream = self._err or sys.stderr
        stream.write(text)
        stream.flush()


def clean(value: Any) -> str:
    """A value as one printable line: None is '-', lists are comma-joined, control characters are escaped."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(clean(item) for item in value) if value else "(none)"
    if isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False)
    text = str(value)
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart; no trailing spaces."""
    cells = [list(headers), *[[clean(cell) for cell in row] for row in rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]


def fields(mapping: Mapping[str, Any], *, indent: int = 0) -> list[str]:
    """``name  value`` lines; nested objects become indented blocks under their name."""
    scalars = [name for name, value in mapping.items() if not isinstance(value, dict)]
    width = max((len(name) for name in scalars), default=0)
    lines: list[str] = []
    pad = " " * indent
    for name, value in mapping.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{clean(name)}:" + ("" if value else " (none)"))
            lines.extend(fields(value, indent=indent + 2))
        else:
            lines.append(f"{pad}{clean(name).ljust(width)}  {clean(value)}".rstrip())
    return lines


def policy_summary(policy: Any) -> str:
    """A tenant policy in one cell: only the limits that are set, or 'unlimited'."""
    if not isinstance(policy, dict):
        return clean(policy)
    parts = []
    for name, value in policy.items():
        if value is None:
            continue
        label = _POLICY_LABELS.get(name, name)
        if name == "allow_audio":
            parts.append(f"audio={'yes' if value else 'no'}")
        elif name == "max_duration":
            parts.append(f"{label}={value}s")
        elif name == "allowed_endpoints" and isinstance(value, list):
            parts.append(f"{label}={len(value)}")
        else:
            parts.append(f"{label}={clean(value)}")
    return " ".join(parts) or "unlimited"


def describe_error(error: ApiError) -> list[str]:
    """An error response in words: fal's ``{"detail", "error_type"}``, the 422 detail list, or the raw text."""
    body = error.body
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        lines = [f"HTTP {error.status_code}: the gateway rejected the request:"]
        lines.extend(f"  {_location(item)}: {_message(item)}" for item in detail)
    elif isinstance(detail, str):
        kind = body.get("error_type") if isinstance(body, dict) else None
        lines = [f"HTTP {error.status_code}{f' ({clean(kind)})' if kind else ''}: {clean(detail)}"]
    elif 200 <= error.status_code < 300:
        lines = [f"HTTP {error.status_code}: the answer is not JSON: {clean(error.text[:300])}"]
    else:
        text = clean(error.text.strip()[:300]) or "(empty body)"
        lines = [f"HTTP {error.status_code}: {text}"]
    return lines + _hints(error)


def _location(item: Any) -> str:
    loc = item.get("loc") if isinstance(item, dict) else None
    if not isinstance(loc, list) or not loc:
        return "(request)"
    path = loc[1:] if loc[0] == "body" and len(loc) > 1 else loc
    return ".".join(clean(part) for part in path)


def _message(item: Any) -> str:
    if not isinstance(item, dict):
        return clean(item)
    kind = item.get("type")
    generic = not kind or kind == "value_error"  # Litestar's own validation labels everything value_error
    return clean(item.get("msg", "invalid")) + ("" if generic else f" [{clean(kind)}]")


def _hints(error: ApiError) -> list[str]:
    if error.status_code == 401:
        return ["hint: check the admin token (--token or GATEWAY_ADMIN_TOKEN)"]
    if error.status_code == 429 and error.headers.get("retry-after"):
        return [f"hint: retry after {clean(error.headers['retry-after'])} s"]
    if 300 <= error.status_code < 400:
        location = error.headers.get("location")
        return [f"hint: the gateway redirects to {clean(location)}; pass that base URL as --url"] if location else []
    return []
