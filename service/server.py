"""Running an app under uvicorn with the gateway's settings: host, port, TLS, parser, event loop, connection limits,
graceful shutdown (the drain: docs/architecture.md, "Shutdown")."""

from __future__ import annotations

import socket

import uvicorn
from litestar import Litestar

from service.config import Settings
from service.drain import Drain
from service.limits_http import ConnectionLimits, LimitedH11Protocol, bound_protocol
from service.limits_httptools import LimitedHttpToolsProtocol

GRACEFUL_SHUTDOWN_SECONDS = 15


class DrainingServer(uvicorn.Server):
    """uvicorn's server, which announces the shutdown to the app (``service/drain.py``) before it starts waiting for
    the connections still open: uvicorn itself tells the app only after they have all closed (lifespan shutdown),
    and the long ``/run`` waits and status streams among them must learn earlier that they should end."""

    def __init__(self, config: uvicorn.Config, app: Litestar) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        drain = getattr(self._app.state, "drain", None)
        if isinstance(drain, Drain):  # absent if the lifespan never started
            drain.begin()
        await super().shutdown(sockets)


def server_config(app: Litestar, settings: Settings) -> uvicorn.Config:
    """uvicorn's configuration for ``app``: the chosen parser (httptools by default, h11 on request) with the
    gateway's connection limits (``service/limits_http*.py``), the chosen event loop, no WebSocket upgrades (the
    gateway serves none), and no access log of uvicorn's own (the app logs each request).

    A TLS handshake is bounded by asyncio's own default (60 s); the header deadline starts once it is done.
    """
    parser = LimitedHttpToolsProtocol if settings.http_parser == "httptools" else LimitedH11Protocol
    protocol = bound_protocol(parser, ConnectionLimits.from_settings(settings))
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls_cert_file) if settings.tls_cert_file else None,
        ssl_keyfile=str(settings.tls_key_file) if settings.tls_key_file else None,
        http=protocol,
        loop=settings.event_loop,
        ws="none",
        h11_max_incomplete_event_size=settings.max_header_bytes,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def run_server(app: Litestar, settings: Settings, *, shared_port: bool = False) -> None:
    """Serve until stopped. ``shared_port``: bind with SO_REUSEPORT, so that several processes (``--workers``) listen
    on the same port and the kernel spreads the connections over them."""
    config = server_config(app, settings)
    if not shared_port:
        DrainingServer(config, app).run()
        return
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((settings.host, settings.port))
    sock.set_inheritable(True)
    DrainingServer(config, app).run(sockets=[sock])
