"""structlog set-up: JSON lines in production, readable output on a TTY, contextvars merged into every line."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

from service.config import Settings

# Tracebacks as data, without the frames' local variables: structlog shows them by default, and a frame's locals
# hold the request's headers (a tenant key, the admin token) and whatever secret the failing code was handling.
TRACEBACKS = structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False))


def configure_logging(settings: Settings) -> None:
    json_output = settings.log_json if settings.log_json is not None else not sys.stderr.isatty()
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: list[structlog.typing.Processor] = (
        [TRACEBACKS, structlog.processors.JSONRenderer(serializer=_json)]
        if json_output
        # Plain tracebacks: rich's highlighted ones cost milliseconds each, which a loop surviving an outage feels.
        else [structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)]
    )
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def _json(event: Any, **options: Any) -> str:
    """One log line as JSON, with orjson (several times faster than json.dumps, and every request logs a line)."""
    return orjson.dumps(event, default=options.get("default")).decode()
