"""Litestar's validation errors rewritten as fal's detail list (docs/protocol.md §6.1)."""

from __future__ import annotations

from typing import Any

from litestar.exceptions import ValidationException


def litestar_validation_detail(exc: ValidationException) -> list[dict[str, Any]]:
    """Litestar's validation errors as fal's detail list. Litestar names a missing or non-object body "data"."""
    entries = exc.extra if isinstance(exc.extra, list) else []
    detail: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        key = str(entry.get("key") or "")
        message = str(entry.get("message", "Invalid value"))
        if key in {"", "data"}:
            missing = message.strip("'\"") == "data" or "required" in message.lower()
            detail.append(
                {
                    "type": "missing" if missing else "model_attributes_type",
                    "loc": ["body"],
                    "msg": "Field required" if missing else "Input should be a JSON object",
                }
            )
            continue
        detail.append(
            {"type": "value_error", "loc": [str(entry.get("source", "body")), *key.split(".")], "msg": message}
        )
    return detail or [{"type": "value_error", "loc": ["body"], "msg": str(exc.detail)}]


def too_deep_detail() -> list[dict[str, Any]]:
    """fal's detail list for a body the JSON decoder could not descend into (nested too deep)."""
    return [{"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error: the body is nested too deep"}]
