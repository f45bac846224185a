"""Running an app under uvicorn with the gateway's settings: host, port, TLS, connection limits, graceful shutdown."""

from __future__ import annotations

import uvicorn
from litestar import Litestar

from service.config import Settings
from service.limits_http import ConnectionLimits, limited_protocol

GRACEFUL_SHUTDOWN_SECONDS = 15


def server_config(app: Litestar, settings: Settings) -> uvicorn.Config:
    """uvicorn's configuration for ``app``: h11 with the gateway's connection limits (``service/limits_http.py``),
    no WebSocket upgrades (the gateway serves none), and no access log of uvicorn's own (the app logs each request).

    A TLS handshake is bounded by asyncio's own default (60 s); the header deadline starts once it is done.
    """
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls_cert_file) if settings.tls_cert_file else None,
        ssl_keyfile=str(settings.tls_key_file) if settings.tls_key_file else None,
        http=limited_protocol(ConnectionLimits.from_settings(settings)),
        ws="none",
        h11_max_incomplete_event_size=settings.max_header_bytes,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def run_server(app: Litestar, settings: Settings) -> None:
    uvicorn.Server(server_config(app, settings)).run()
