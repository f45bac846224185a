"""The fal simulator's own tests' support: a state on a hand-driven clock, an in-process client, webhook checks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx

from service.simulator.app import SimulatorConfig, SimulatorState, create_simulator_app
from tests.support.clocks import ManualClock
from tests.support.endpoints import T2V, T2V_INPUT

AUTH = {"Authorization": "Key sim-test-key"}
BASE = "http://sim"
WALL_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
QUEUE_SECONDS = 1.0
PROCESSING_SECONDS = 4.0
LOG_LINES = 5
HOOK_URL = "http://receiver.test/fal/webhook"
REDIRECT_URL = "http://elsewhere.test/moved"


def make_state(clock: ManualClock, **config: Any) -> SimulatorState:
    values: dict[str, Any] = {
        "queue_seconds": QUEUE_SECONDS,
        "processing_seconds": PROCESSING_SECONDS,
        "log_lines": LOG_LINES,
    }
    return SimulatorState(SimulatorConfig(**{**values, **config}), clock=clock, wall_clock=lambda: WALL_START)


@asynccontextmanager
async def sim_client(state: SimulatorState, headers: dict[str, str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A client on a fresh app around ``state``; sends ``AUTH`` unless other default headers are given."""
    # Litestar types its ASGI callable more narrowly than httpx's generic `_ASGIApp`; they are the same protocol.
    transport = httpx.ASGITransport(app=cast("Any", create_simulator_app(state)))
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, headers=AUTH if headers is None else headers
    ) as client:
        yield client


async def submit(
    client: httpx.AsyncClient, endpoint: str = T2V, body: Any = None, params: dict[str, str] | None = None
) -> dict[str, Any]:
    """Submit and return the queue handle, asserting the submit itself was accepted."""
    response = await client.post(f"/{endpoint}", json=T2V_INPUT if body is None else body, params=params)
    assert response.status_code == 200, response.text
    handle: dict[str, Any] = response.json()
    return handle


def path_of(url: str) -> str:
    """The simulator-relative path of one of its own absolute URLs."""
    assert url.startswith(BASE + "/"), url
    return url.removeprefix(BASE)


class WebhookReceiver:
    """A webhook endpoint on an ``httpx.MockTransport`` (``transport``) that keeps every request it gets.

    It answers with the next of ``answers``, then 200: a status (a 3xx with a ``Location``), or an exception to raise.
    """

    def __init__(self, answers: Iterable[int | Exception] = ()) -> None:
        self.requests: list[httpx.Request] = []
        self.arrived = asyncio.Event()
        self._answers = list(answers)
        self.transport = httpx.MockTransport(self._answer)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.arrived.set()
        answer = self._answers.pop(0) if self._answers else 200
        if isinstance(answer, Exception):
            raise answer
        headers = {"location": REDIRECT_URL} if 300 <= answer < 400 else None
        return httpx.Response(answer, headers=headers)


# --- a reference Ed25519 verifier (RFC 8032 §5.1.7), written from the RFC: it shares no code with the simulator ---

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)


def _add(a: Point, b: Point) -> Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    minus, plus = (y1 - x1) * (y2 - x2) % _P, (y1 + x1) * (y2 + x2) % _P
    c, d = 2 * t1 * t2 * _D % _P, 2 * z1 * z2 % _P
    e, f, g, h = plus - minus, d - c, d + c, plus + minus
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _times(scalar: int, point: Point) -> Point:
    result: Point = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _same(a: Point, b: Point) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _decode_point(encoded: bytes) -> Point | None:
    y = int.from_bytes(encoded, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= _P:
        return None
    xx = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(xx, (_P + 3) // 8, _P)
    if (x * x - xx) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - xx) % _P or (x == 0 and sign):
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


_BASE = _decode_point((4 * pow(5, _P - 2, _P) % _P).to_bytes(32, "little"))


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``message`` signed by the key whose public half is ``public_key``."""
    if len(public_key) != 32 or len(signature) != 64 or _BASE is None:
        return False
    a, r = _decode_point(public_key), _decode_point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % _L
    return _same(_times(s, _BASE), _add(r, _times(k, a)))


async def jwks_key(state: SimulatorState) -> bytes:
    """The one public key the simulator publishes, fetched without credentials as a receiver would."""
    async with sim_client(state, headers={}) as anonymous:
        response = await anonymous.get("/.well-known/jwks.json")
    assert response.status_code == 200
    (jwk,) = response.json()["keys"]
    assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
    assert isinstance(jwk["kid"], str)
    assert jwk["kid"]
    assert "=" not in jwk["x"]
    return base64.urlsafe_b64decode(jwk["x"] + "=")


def signature_verifies(request: httpx.Request, key: bytes) -> bool:
    """Whether the request's fal signature verifies, computed from the headers and the raw body alone."""
    headers = request.headers
    content = "\n".join(
        [
            headers["x-fal-webhook-request-id"],
            headers["x-fal-webhook-user-id"],
            headers["x-fal-webhook-timestamp"],
            hashlib.sha256(request.content).hexdigest(),
        ]
    ).encode()
    return ed25519_verify(key, content, bytes.fromhex(headers["x-fal-webhook-signature"]))


def check_delivery(request: httpx.Request, request_id: str, timestamp: int, user_id: str = "simulator-user") -> Any:
    """Assert the delivery's fal headers; returns its JSON body."""
    assert (request.method, str(request.url)) == ("POST", HOOK_URL)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-fal-webhook-request-id"] == request_id
    assert request.headers["x-fal-webhook-user-id"] == user_id
    assert request.headers["x-fal-webhook-timestamp"] == str(timestamp)
    return json.loads(request.content)
