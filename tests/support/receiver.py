"""A real webhook receiver on loopback for the tests: records every request and answers from a per-path script."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HOLD_SECONDS = 30.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass
class Receiver:
    """``script[path]`` lists the statuses to answer in order (then 200); ``retry_after[path]`` adds that header;
    ``hold[path]`` requests to that path are recorded but left unanswered until the receiver stops (at most
    ``HOLD_SECONDS``), like a receiver that hangs."""

    script: dict[str, list[int]] = field(default_factory=dict)
    retry_after: dict[str, str] = field(default_factory=dict)
    hold: dict[str, int] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                with receiver._lock:
                    receiver.connections += 1
                super().setup()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                path = self.path
                with receiver._lock:
                    receiver.received.append(Received(path, {k.lower(): v for k, v in self.headers.items()}, body))
                    planned = receiver.script.get(path) or []
                    status = planned.pop(0) if planned else 200
                    held = receiver.hold.get(path, 0) > 0
                    if held:
                        receiver.hold[path] -= 1
                if held:
                    receiver._released.wait(HOLD_SECONDS)
                try:
                    self.send_response(status)
                    if path in receiver.retry_after and status != 200:
                        self.send_header("Retry-After", receiver.retry_after[path])
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender gave up on a held request
                    return

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]


def fal_signature_valid(jwks: Mapping[str, Any], received: Received) -> bool:
    """fal's scheme, checked independently of the gateway's code, from its definition: a hex Ed25519 signature over
    ``{request_id}\\n{user_id}\\n{timestamp}\\n{sha256_hex(body)}``, valid if any key of the JWKS verifies it."""
    headers = received.headers
    content = "\n".join(
        [
            headers["x-fal-webhook-request-id"],
            headers["x-fal-webhook-user-id"],
            headers["x-fal-webhook-timestamp"],
            hashlib.sha256(received.body).hexdigest(),
        ]
    ).encode()
    signature = bytes.fromhex(headers["x-fal-webhook-signature"])
    for key in jwks["keys"]:
        raw = base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, content)
        except InvalidSignature:
            continue
        return True
    return False


async def served_jwks(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document
