"""Running an app under uvicorn with the gateway's settings (host, port, TLS, graceful shutdown)."""

from __future__ import annotations

import uvicorn
from litestar import Litestar

from service.config import Settings

GRACEFUL_SHUTDOWN_SECONDS = 15


def run_server(app: Litestar, settings: Settings) -> None:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls_cert_file) if settings.tls_cert_file else None,
        ssl_keyfile=str(settings.tls_key_file) if settings.tls_key_file else None,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    uvicorn.Server(config).run()
