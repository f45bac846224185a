"""The simulator embedded in a gateway process (``GATEWAY_SIMULATOR`` / ``seedance-gateway dev``).

The gateway talks to it in-process, and serves it at ``/_simulator`` so that output video URLs work in a browser.
Those URLs point at the gateway itself; the media transport routes them back to the simulator in-process, so the
gateway's own fetches of its outputs (the settlement size probe) never make a network round trip to itself (which,
over the dev TLS certificate, they could not anyway). Everything else goes to the network as usual.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from litestar import Litestar

from service.http import in_process_transport
from service.simulator.app import create_simulator_app
from service.simulator.state import SimulatorConfig, SimulatorState

INTERNAL_BASE = "http://simulator.invalid"


@dataclass(frozen=True, slots=True)
class EmbeddedSimulator:
    app: Litestar
    upstream_url: str
    transport: httpx.AsyncBaseTransport
    media_transport: httpx.AsyncBaseTransport
    public_base: str
    state: SimulatorState


def embedded_simulator(
    public_mount_base: str,
    *,
    queue_seconds: float | None = None,
    processing_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    network: httpx.AsyncBaseTransport | None = None,
) -> EmbeddedSimulator:
    """A simulator whose media URLs start with ``public_mount_base`` (the gateway's URL of the mount); its jobs wait
    and run as long as the simulator's defaults unless ``queue_seconds`` / ``processing_seconds`` say otherwise.
    ``network`` carries the media fetches of every other URL: the gateway passes its pinned outbound guard (the
    default, plain httpx, is for the simulator's own process)."""
    config = SimulatorConfig(media_base_url=public_mount_base)
    if queue_seconds is not None:
        config.queue_seconds = queue_seconds
    if processing_seconds is not None:
        config.processing_seconds = processing_seconds
    state = SimulatorState(config, clock=clock)
    app = create_simulator_app(state)
    transport = in_process_transport(app)
    return EmbeddedSimulator(
        app=app,
        upstream_url=INTERNAL_BASE,
        transport=transport,
        media_transport=MountedMediaTransport(public_mount_base, transport, network=network),
        public_base=public_mount_base,
        state=state,
    )


class MountedMediaTransport(httpx.AsyncBaseTransport):
    """Sends requests under ``mount_base`` to the in-process simulator and every other request to the network."""

    def __init__(
        self, mount_base: str, simulator: httpx.AsyncBaseTransport, *, network: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._prefix = mount_base.rstrip("/") + "/"
        self._simulator = simulator
        self._network = network or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url.startswith(self._prefix):
            request.url = httpx.URL(INTERNAL_BASE + "/" + url.removeprefix(self._prefix))
            request.headers["host"] = request.url.netloc.decode()
            return await self._simulator.handle_async_request(request)
        return await self._network.handle_async_request(request)

    async def aclose(self) -> None:
        await self._network.aclose()
