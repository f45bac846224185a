"""Slow and greedy clients against ``serve --simulator`` as a real process: read deadlines, header limits, the cap."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import uvicorn

from service.app import create_app
from service.config import Settings
from service.server import server_config
from tests.support.endpoints import T2V
from tests.support.loopback import free_port, wait_ready
from tests.support.redis import flush

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "slow-clients-admin-token"
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_CONNECTIONS = 3
SLACK = 3.0  # how much later than its deadline a connection may be closed on a busy machine
TRICKLE_INTERVAL = 0.1  # between the bytes a slow client sends: the attack's pace, not a synchronisation


STRICT: dict[str, Any] = {"header_timeout_seconds": HEADER_TIMEOUT, "body_timeout_seconds": BODY_TIMEOUT}
CAPPED: dict[str, Any] = {"header_timeout_seconds": 30, "max_connections": MAX_CONNECTIONS}


@dataclass
class Server:
    port: int
    stop: Callable[[], None]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=HEADER_TIMEOUT + SLACK)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def start_process(tmp: Path, redis_url: str, name: str, settings: dict[str, Any]) -> Server:
    """``python -m service serve --simulator`` on a free loopback port, with ``settings`` as ``GATEWAY_*``."""
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_LOG_JSON": "true",
        **{f"GATEWAY_{key.upper()}": str(value) for key, value in settings.items()},
    }
    with (tmp / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--simulator"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop() -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    server = Server(port, stop)
    try:
        wait_ready(f"{server.url}/healthz", alive=lambda: process.poll() is None)
    except BaseException:
        stop()
        raise
    return server


def start_thread(redis_url: str, settings: dict[str, Any]) -> Server:
    """The same server (``service.server.server_config``) in a thread of the test process, so that coverage sees the
    protocol's code."""
    config = Settings(redis_url=redis_url, admin_token=ADMIN_TOKEN, simulator=True, port=free_port(), **settings)
    server = uvicorn.Server(server_config(create_app(config), config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=20)
        assert not thread.is_alive(), "the gateway thread did not stop"

    started = Server(config.port, stop)
    try:
        wait_ready(f"{started.url}/healthz", alive=thread.is_alive)
    except BaseException:
        stop()
        raise
    return started


@pytest.fixture(scope="module", params=["process", "thread-httptools", "thread-h11"])
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[tuple[Server, Server]]:
    """Two gateways: ``strict`` with one-second read deadlines, ``capped`` with long ones and a small cap; as real
    processes (httptools, the default parser), then in threads with each parser."""
    flush(redis_url)
    saved = structlog.get_config()
    started: list[Server] = []
    try:
        if request.param == "process":
            tmp = tmp_path_factory.mktemp("slow-clients")
            started.append(start_process(tmp, redis_url, "strict", STRICT))
            started.append(start_process(tmp, redis_url, "capped", CAPPED))
        else:
            structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # the threads' logs stay quiet
            parser = {"http_parser": request.param.removeprefix("thread-")}
            started.append(start_thread(redis_url, STRICT | parser))
            started.append(start_thread(redis_url, CAPPED | parser))
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()
        structlog.configure(**saved)
        flush(redis_url)


@pytest.fixture
def strict(servers: tuple[Server, Server]) -> Server:
    return servers[0]


@pytest.fixture
def capped(servers: tuple[Server, Server]) -> Server:
    return servers[1]


def closed_now(sock: socket.socket, wait: float) -> tuple[bool, bytes]:
    """Whether the server has closed ``sock`` (reading what it sent first), waiting at most ``wait`` seconds."""
    sock.settimeout(wait)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return False, received
    except ConnectionResetError:
        pass
    return True, received


def trickle_until_closed(sock: socket.socket, data: bytes, *, deadline: float) -> tuple[float, bytes]:
    """Send ``data`` a byte at a time until the server closes the connection; returns when, and what it answered."""
    started = time.monotonic()
    for byte in data:
        if time.monotonic() - started > deadline:
            break
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started, b""
        closed, received = closed_now(sock, TRICKLE_INTERVAL)
        if closed:
            return time.monotonic() - started, received
    pytest.fail(f"the server kept the trickling connection open for {deadline}s")


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response on ``sock`` that the server then closes: status, headers, body."""
    closed, raw = closed_now(sock, HEADER_TIMEOUT + SLACK)
    assert closed, "the server keeps the connection open after refusing the request"
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def assert_fal_request_error(status: int, headers: dict[str, str], body: bytes, error_type: str) -> None:
    assert headers["content-type"] == "application/json"
    assert headers["x-fal-error-type"] == error_type
    assert headers["x-fal-request-id"]
    assert headers["connection"] == "close"
    payload = json.loads(body)
    assert payload["error_type"] == error_type, (status, payload)
    assert isinstance(payload["detail"], str)


def tenant_key(server: Server) -> str:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    httpx.post(f"{server.url}/admin/tenants", json={"id": "slow", "name": "Slow"}, headers=admin, timeout=10)
    response = httpx.post(f"{server.url}/admin/tenants/slow/keys", headers=admin, timeout=10)
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


# --- read deadlines --------------------------------------------------------------------------------------------


def test_headers_sent_a_byte_at_a_time_are_cut_off_while_other_requests_are_served(strict: Server) -> None:
    endless = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 10_000
    with closing(strict.connect()) as slow:
        slow.sendall(endless[:10])
        assert httpx.get(f"{strict.url}/healthz", timeout=5).status_code == 200, "others are served meanwhile"

        elapsed, answer = trickle_until_closed(slow, endless[10:], deadline=HEADER_TIMEOUT + SLACK)

    assert answer == b""
    assert elapsed < HEADER_TIMEOUT + SLACK
    assert httpx.get(f"{strict.url}/healthz", timeout=5).status_code == 200


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(strict: Server) -> None:
    started = time.monotonic()
    with closing(strict.connect()) as idle:
        closed, received = closed_now(idle, HEADER_TIMEOUT + SLACK)

    assert closed
    assert received == b""
    assert HEADER_TIMEOUT * 0.8 <= time.monotonic() - started < HEADER_TIMEOUT + SLACK


def test_the_next_request_on_a_kept_alive_connection_has_the_same_header_deadline(strict: Server) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with closing(strict.connect()) as sock:
        sock.sendall(request + request)  # pipelined: both are answered
        answered = b""
        sock.settimeout(HEADER_TIMEOUT + SLACK)
        while answered.count(b"HTTP/1.1 200") < 2:
            chunk = sock.recv(65536)
            assert chunk, "closed before both pipelined requests were answered"
            answered += chunk

        elapsed, answer = trickle_until_closed(
            sock, request[:-2] + b"X-Slow: " + b"b" * 1000, deadline=HEADER_TIMEOUT + SLACK
        )

    assert answer == b""
    assert elapsed < HEADER_TIMEOUT + SLACK


def next_response(sock: socket.socket) -> bytes:
    """The next whole response on a connection the server keeps open (its body framed by Content-Length)."""
    sock.settimeout(HEADER_TIMEOUT + SLACK)
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        assert chunk, f"closed mid-response: {raw!r}"
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed mid-body"
        body += chunk
    return head


def test_a_request_answered_before_its_body_arrived_still_frames_the_next_one(strict: Server) -> None:
    with closing(strict.connect()) as sock:
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n")
        assert next_response(sock).startswith(b"HTTP/1.1 405"), "answered without reading the body"
        sock.sendall(b"hello" + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert next_response(sock).startswith(b"HTTP/1.1 200")

        closed, received = closed_now(sock, HEADER_TIMEOUT + SLACK)

    assert (closed, received) == (True, b""), "idle after its response, the connection is closed at the deadline"


def test_garbage_after_an_early_answer_closes_the_connection_without_another_answer(strict: Server) -> None:
    with closing(strict.connect()) as sock:
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert next_response(sock).startswith(b"HTTP/1.1 405")
        sock.sendall(b"not a chunk size\r\n")

        closed, received = closed_now(sock, HEADER_TIMEOUT + SLACK)

    assert (closed, received) == (True, b"")


def test_a_body_that_trickles_is_cut_off_and_nothing_is_submitted(strict: Server) -> None:
    key = tenant_key(strict)
    payload = json.dumps({"prompt": "a fox " * 200}).encode()
    head = (
        f"POST /queue/{T2V} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Key {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode()
    with closing(strict.connect()) as slow:
        slow.sendall(head)
        started = time.monotonic()
        elapsed, answer = trickle_until_closed(slow, payload, deadline=BODY_TIMEOUT + SLACK)

    assert b"200 OK" not in answer
    assert BODY_TIMEOUT * 0.8 <= time.monotonic() - started < BODY_TIMEOUT + SLACK
    assert elapsed < BODY_TIMEOUT + SLACK
    stats = httpx.get(f"{strict.url}/_simulator/_sim/stats", timeout=5).json()
    assert stats["calls"]["submit"] == 0


def test_a_body_sent_in_time_is_served(strict: Server) -> None:
    key = tenant_key(strict)
    response = httpx.post(
        f"{strict.url}/v1/estimate/{T2V}", json={"prompt": "x"}, headers={"Authorization": f"Key {key}"}, timeout=10
    )
    assert response.status_code == 200, response.text


# --- header limits ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000,  # never finished
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-H%d: v\r\n" % n for n in range(120)) + b"\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 400) for n in range(50))
        + b"\r\n",
    ],
    ids=["one-huge-header", "huge-and-unfinished", "too-many-headers", "many-large-headers"],
)
def test_oversized_or_too_many_headers_get_431_and_the_connection_is_closed(
    strict: Server, request_head: bytes
) -> None:
    with closing(strict.connect()) as sock:
        sock.sendall(request_head)
        status, headers, body = read_response(sock)

    assert status == 431
    assert_fal_request_error(status, headers, body, "request_header_fields_too_large")


def test_a_malformed_request_gets_400_in_fal_shape(strict: Server) -> None:
    with closing(strict.connect()) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, headers, body = read_response(sock)

    assert status == 400
    assert_fal_request_error(status, headers, body, "bad_request")


# --- the connection cap ----------------------------------------------------------------------------------------


def test_connections_beyond_the_cap_get_a_fal_503_and_the_cap_frees_up(capped: Server) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with ExitStack() as stack:
        held = [stack.enter_context(closing(capped.connect())) for _ in range(MAX_CONNECTIONS - 1)]
        with closing(capped.connect()) as last_allowed:
            last_allowed.sendall(request)
            last_allowed.settimeout(5)
            assert last_allowed.recv(65536).startswith(b"HTTP/1.1 200"), "the cap admits exactly the maximum"

            with closing(capped.connect()) as beyond:
                beyond.sendall(request)
                status, headers, body = read_response(beyond)

        assert status == 503
        assert headers["retry-after"] == "1"
        assert_fal_request_error(status, headers, body, "too_many_connections")

        held.pop().close()
        served = wait_until_served(capped, timeout=10)
        assert served, "a request is served again once connections are freed"
    stats = httpx.get(f"{capped.url}/_simulator/_sim/stats", timeout=5).json()
    assert stats["calls"]["submit"] == 0


def wait_until_served(server: Server, *, timeout: float) -> bool:
    """Poll with fresh connections until one is served 200 (the server frees a closed connection's place
    asynchronously), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{server.url}/healthz", timeout=5)
        if response.status_code == 200:
            return True
        assert response.status_code == 503
        time.sleep(0.05)
    return False
