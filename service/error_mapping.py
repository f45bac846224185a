"""Litestar's validation errors rewritten as fal's detail list (docs/protocol.md §6.1)."""

from __future__ import annotations

import re
from enum import Enum
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
        # A parameter's source is Litestar's ParamType, whose str() is "ParamType.QUERY"; fal's loc says "query".
        source = entry.get("source", "body")
        source = source.value if isinstance(source, Enum) else str(source)
        detail.append({"type": "value_error", "loc": [source, *key.split(".")], "msg": message})
    if detail:
        return detail
    absent = _MISSING_PARAMETER.match(str(exc.detail))
    if absent:  # Litestar names a missing parameter in its message only: FastAPI's entry for it
        return [{"type": "missing", "loc": [absent["source"], absent["name"]], "msg": "Field required"}]
    return [{"type": "value_error", "loc": ["body"], "msg": str(exc.detail)}]


# Litestar's message for a required parameter that is absent (``litestar/_kwargs/extractors.py``).
_MISSING_PARAMETER = re.compile(r"Missing required (?P<source>query|header|cookie|path) parameter '(?P<name>[^']*)'")


def too_deep_detail() -> list[dict[str, Any]]:
    """fal's detail list for a body the JSON decoder could not descend into (nested too deep)."""
    return [{"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error: the body is nested too deep"}]


def json_invalid_detail(reason: str) -> list[dict[str, Any]]:
    """fal's detail list for a body that is not JSON (as a submit answers it, ``service/domain/schemas.py``)."""
    return [
        {"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error", "input": {}, "ctx": {"error": reason}}
    ]
