"""The HTTP server's connection limits: header and body read deadlines, header size and count, the connection cap."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import h11
import structlog
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol
from uvicorn.server import ServerState

from service.config import Settings

log = structlog.get_logger("service.limits_http")
P = TypeVar("P", bound=asyncio.Protocol)

Event = h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]
ERROR_TYPES = {400: "bad_request", 431: "request_header_fields_too_large"}
# The part of a header line that is not its name or value: ": " and CRLF.
HEADER_LINE_OVERHEAD = 4


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_seconds: float
    body_timeout_seconds: float
    max_header_bytes: int
    max_headers: int
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout_seconds=settings.header_timeout_seconds,
            body_timeout_seconds=settings.body_timeout_seconds,
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            max_connections=settings.max_connections,
        )


def bound_protocol(protocol: type[P], limits: ConnectionLimits) -> type[P]:
    """``protocol`` (one of the limited protocols) bound to ``limits``, to pass as ``uvicorn.Config(http=...)``."""
    return type(protocol.__name__, (protocol,), {"limits": limits})


class WatchedConnection(h11.Connection):
    """h11's server side, showing every event it parses to ``watch`` (which may refuse it by raising
    ``h11.RemoteProtocolError``) and keeping the last protocol error, whose status hint the answer uses."""

    def __init__(self, max_incomplete_event_size: int, watch: Callable[[Event], None]) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_incomplete_event_size)
        self.watch = watch
        self.error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Event:
        try:
            event = super().next_event()
            self.watch(event)
        except h11.RemoteProtocolError as exc:
            self.error = exc
            raise
        return event


class Deadlines:
    """The deadlines and the connection cap of a protocol, whichever parser it runs (h11 here, httptools in
    ``service/limits_httptools.py``): the header deadline from the connection's opening, and what both need from
    uvicorn's protocol, declared here. Mixed in before uvicorn's protocol class."""

    limits: ClassVar[ConnectionLimits]
    deadline: asyncio.TimerHandle | None
    connections: set[Any]
    tasks: set[asyncio.Task[None]]
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    client: tuple[str, int] | None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc] # uvicorn's protocol, next in the MRO
        self._arm(self.limits.header_timeout_seconds, "header")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _over_capacity(self) -> bool:
        cap = self.limits.max_connections
        over = len(self.connections) > cap or len(self.tasks) >= cap
        if over:
            log.warning("connection_limit_reached", max_connections=cap, client=client_text(self.client))
        return over

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(seconds, self._expired, what)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _expired(self, what: str) -> None:
        self.deadline = None
        if not self.transport.is_closing():
            log.info("connection_deadline_expired", waiting_for=what, client=client_text(self.client))
            self.transport.close()


class LimitedH11Protocol(Deadlines, H11Protocol):
    """uvicorn's h11 protocol with read deadlines, header limits and a connection cap.

    uvicorn has no deadline for reading a request, so a client that sends its headers or body a byte at a time holds
    its connection for as long as it likes. This protocol adds these limits:

    - the request line and headers must be complete within ``header_timeout_seconds`` of the connection opening (after
      the TLS handshake) or of the previous response on it, and the body within ``body_timeout_seconds`` of the
      headers; a connection that misses either deadline is closed without an answer;
    - the request line and headers may take ``max_header_bytes`` and ``max_headers`` fields; beyond either (and for
      any request h11 cannot parse) the answer is fal's request-error shape, 431 ``request_header_fields_too_large``
      or 400 ``bad_request``, and the connection is closed;
    - a request arriving while more than ``max_connections`` connections are open in the process (or while that many
      requests are in progress) gets 503 ``too_many_connections`` with ``Retry-After: 1`` and ``Connection: close``,
      without reaching the app, so it costs nothing and touches no state.

    uvicorn's own ``limit_concurrency`` is not used: its 503 is a ``text/plain`` "Service Unavailable" from a
    module-level function inside its parser loop (fal's shape would mean patching uvicorn), and it refuses as soon
    as the open connections, the refused one included, reach the limit, so ``N`` serves only ``N - 1`` of them.
    """

    limits: ClassVar[ConnectionLimits]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.watched = WatchedConnection(self.limits.max_header_bytes, self._watch)
        self.conn = self.watched
        self.gateway_app = self.app
        self.deadline: asyncio.TimerHandle | None = None

    def on_response_complete(self) -> None:
        # Before uvicorn's own handling, which may parse a pipelined request at once (and arm its body deadline).
        # While the client is still sending this request's body, its body deadline keeps running.
        if not self.transport.is_closing() and self.conn.their_state is h11.DONE:
            self._arm(self.limits.header_timeout_seconds, "header")
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 refused, in fal's request-error shape, with h11's status hint."""
        error = self.watched.error
        status = error.error_status_hint if error is not None else 400
        if self.conn.our_state not in {h11.IDLE, h11.SEND_RESPONSE}:
            self.transport.close()  # a response is already under way: nothing more can be said
            return
        if status == 431:
            detail = "Request header fields too large"
        else:
            detail = f"Invalid HTTP request: {error}" if error is not None else msg
        body, headers = error_answer(detail, ERROR_TYPES.get(status, "bad_request"))
        for event in (
            h11.Response(status_code=status, headers=headers, reason=STATUS_PHRASES[status]),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()

    # --- the limits ---------------------------------------------------------------------------------------------

    def _watch(self, event: Event) -> None:
        if isinstance(event, h11.Request):
            self._disarm()
            self._check_headers(event)
            self.app = too_many_connections if self._over_capacity() else self.gateway_app
            self._arm(self.limits.body_timeout_seconds, "body")
        elif isinstance(event, h11.EndOfMessage):
            if self.conn.our_state is h11.DONE:  # answered before the body was in: the next request is due
                self._arm(self.limits.header_timeout_seconds, "header")
            else:
                self._disarm()

    def _check_headers(self, request: h11.Request) -> None:
        limits = self.limits
        if len(request.headers) > limits.max_headers:
            raise h11.RemoteProtocolError("too many header fields", error_status_hint=431)
        size = (
            len(request.method)
            + len(request.target)
            + sum(len(name) + len(value) + HEADER_LINE_OVERHEAD for name, value in request.headers)
        )
        if size > limits.max_header_bytes:
            raise h11.RemoteProtocolError("header fields too large", error_status_hint=431)


async def too_many_connections(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """The answer beyond ``max_connections``: fal's request-error shape, never reaching the gateway's app."""
    del scope, receive
    body, headers = error_answer("Too many open connections; retry shortly", "too_many_connections")
    await send({"type": "http.response.start", "status": 503, "headers": [*headers, (b"retry-after", b"1")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def client_text(address: tuple[str, int] | None) -> str | None:
    return f"{address[0]}:{address[1]}" if address else None


def error_answer(detail: str, error_type: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """A request error as every gateway error is (docs/protocol.md §6.1), for answers given outside the app."""
    body = json.dumps({"detail": detail, "error_type": error_type}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"x-fal-error-type", error_type.encode()),
        (b"x-fal-request-id", str(uuid.uuid4()).encode()),
    ]
    return body, headers
