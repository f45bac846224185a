"""The connection limits of ``service/limits_http.py`` on uvicorn's httptools (llhttp) parser, the fast one.

The same limits, the same answers: header and body read deadlines, header size and count (431 in fal's shape), any
request the parser refuses (400 in fal's shape) and the connection cap (503 ``too_many_connections``). httptools
keeps a header's bytes in memory until its line ends and has no limit of its own, so the bytes a request's head may
take are also counted as they arrive: a head that is still incomplete after ``max_header_bytes`` is refused too.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from service.limits_http import (
    ERROR_TYPES,
    HEADER_LINE_OVERHEAD,
    ConnectionLimits,
    Deadlines,
    error_answer,
    too_many_connections,
)


class HeadRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class LimitedHttpToolsProtocol(Deadlines, HttpToolsProtocol):
    limits: ClassVar[ConnectionLimits]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.gateway_app = self.app
        self.deadline: asyncio.TimerHandle | None = None
        self.in_head = True  # reading a request line and headers (or waiting for the next request)
        self.head_bytes = 0  # bytes received while in_head: an upper bound of what the parser keeps
        self.head_size = 0  # the exact size of the request line and headers parsed so far
        self.head_fields = 0
        self.refused: HeadRefused | None = None

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            self.head_bytes += len(data)
        super().data_received(data)
        # Still no end of the head after more than it may take: the parser would keep buffering it.
        if self.in_head and self.head_bytes > self.limits.max_header_bytes and not self.transport.is_closing():
            self.refused = HeadRefused(431, "header fields too large")
            self.send_400_response("")

    # --- parser callbacks -----------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head, self.head_size, self.head_fields = True, 0, 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_fields += 1
        if self.head_fields > self.limits.max_headers:
            self._refuse(431, "too many header fields")
        self._count(len(name) + len(value) + HEADER_LINE_OVERHEAD)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self.in_head, self.head_bytes = False, 0
        self.app = too_many_connections if self._over_capacity() else self.gateway_app
        super().on_headers_complete()
        self._arm(self.limits.body_timeout_seconds, "body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head, self.head_bytes = True, 0  # what comes next is the next request's head
        if self.cycle is not None and self.cycle.response_complete:  # answered before the body was in
            self._arm(self.limits.header_timeout_seconds, "header")
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        # While the client is still sending this request's body, its body deadline keeps running.
        if not self.transport.is_closing() and self.cycle is not None and not self.cycle.more_body:
            self._arm(self.limits.header_timeout_seconds, "header")
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """The answer to a request the parser refused, in fal's request-error shape (431 for a head too large)."""
        cycle = self.cycle
        if cycle is not None and (cycle.more_body or not cycle.response_complete):
            # A response is under way, or was given before this request's body was in: nothing more can be said.
            self.transport.close()
            return
        refused, self.refused = self.refused, None
        status = refused.status if refused is not None else 400
        detail = "Request header fields too large" if status == 431 else f"Invalid HTTP request: {refused or msg}"
        body, headers = error_answer(detail, ERROR_TYPES.get(status, "bad_request"))
        head = [f"HTTP/1.1 {status} {STATUS_PHRASES[status].decode()}\r\n".encode()]
        head += [name + b": " + value + b"\r\n" for name, value in headers]
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()

    # --- the limits ---------------------------------------------------------------------------------------------

    def _count(self, size: int) -> None:
        self.head_size += size
        if self.head_size > self.limits.max_header_bytes:
            self._refuse(431, "header fields too large")

    def _refuse(self, status: int, reason: str) -> None:
        self.refused = HeadRefused(status, reason)
        raise self.refused
