"""The operator CLI's ``webhooks`` commands and ``tenants webhook-secret`` against the real gateway on loopback."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import structlog
import uvicorn
from standardwebhooks.webhooks import Webhook

from service.admin_cli.bodies import since
from service.app import create_app
from service.cli import main as cli_main
from service.config import Settings
from tests.support.admin import ADMIN, ADMIN_TOKEN, key_auth
from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.gateway import fast_settings, fast_simulator, simulator_transport
from tests.support.loopback import wait_ready
from tests.support.redis import flush
from tests.support.waiting import eventually

HOOK = "https://hooks.example.test/seedance?token=receiver-own-token"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@dataclass
class Refuser:
    """The webhook receiver: records every delivery it is sent and refuses each with 404 (final: no retry)."""

    received: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.received.append(request)
        # A streamed body, as a real connection gives: the sender reads it with aiter_raw, which refuses a body
        # httpx has already read (what Response(content=...) does).
        return httpx.Response(404, stream=httpx.ByteStream(b"no such hook"))

    def of(self, delivery_id: str) -> list[httpx.Request]:
        return [r for r in self.received if r.headers.get("webhook-id") == delivery_id]


@dataclass(frozen=True)
class Server:
    url: str
    settings: Settings
    receiver: Refuser


@dataclass(frozen=True)
class Failed:
    tenant: str
    request_id: str
    delivery_id: str


Cli = Callable[..., Result]


async def _resolve(host: str) -> list[str]:
    return ["192.0.2.10"]  # any made-up name: the webhook transport is in-process, nothing connects there


@contextmanager
def _serve(settings: Settings, receiver: Refuser) -> Iterator[str]:
    """The gateway (tracker and delivery worker included) in uvicorn on a free loopback port, in a thread."""
    app = create_app(
        settings,
        upstream_transport=simulator_transport(fast_simulator()),
        webhook_transport=httpx.MockTransport(receiver.handle),
        outbound_resolver=_resolve,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", alive=thread.is_alive)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive(), "the gateway thread did not stop"


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[Server]:
    settings = fast_settings(redis_url, webhook_allowed_networks="0.0.0.0/0,::/0")
    receiver = Refuser()
    flush(redis_url)
    saved = structlog.get_config()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # keep the server's logs out of capsys
    try:
        with _serve(settings, receiver) as url:
            yield Server(url=url, settings=settings, receiver=receiver)
    finally:
        structlog.configure(**saved)
        flush(redis_url)


@pytest.fixture
def cli(server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``seedance-gateway ARGS`` in-process, as in test_admin_cli; an argparse usage error is exit status 2."""
    monkeypatch.setenv("GATEWAY_ADMIN_URL", server.url)
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.delenv("GATEWAY_ADMIN_CACERT", raising=False)
    capsys.readouterr()

    def invoke(*args: str) -> Result:
        try:
            code = cli_main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


async def _admin(server: Server, path: str, **params: str) -> Any:
    async with httpx.AsyncClient(base_url=server.url, headers=ADMIN, timeout=5) as client:
        response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def _settled(server: Server, delivery_id: str, attempts: int) -> dict[str, Any]:
    """The delivery once it has failed after ``attempts`` attempts (bounded wait)."""

    async def probe() -> dict[str, Any] | None:
        found: dict[str, Any] = await _admin(server, f"/admin/webhooks/deliveries/{delivery_id}")
        return found if found["state"] == "failed" and found["attempts"] == attempts else None

    settled: dict[str, Any] = await eventually(probe)
    return settled


async def _failed_delivery(cli: Cli, server: Server, tenant: str, key: str | None = None) -> Failed:
    """A job of ``tenant`` (created if no key is given) whose webhook the receiver refused: its delivery is failed."""
    if key is None:
        assert cli("tenants", "create", tenant, "--name", tenant.title()).code == 0
        issued = cli("keys", "create", tenant, "--json")
        assert issued.code == 0, issued.err
        key = json.loads(issued.out)["key"]
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
        submitted = await client.post(
            f"/queue/{T2V}", params={"fal_webhook": HOOK}, json=T2V_INPUT, headers=key_auth(key)
        )
    assert submitted.status_code == 200, submitted.text
    request_id: str = submitted.json()["request_id"]

    async def logged() -> str | None:
        page = await _admin(server, "/admin/webhooks/deliveries", request_id=request_id)
        return page["deliveries"][0]["id"] if page["deliveries"] else None

    delivery_id: str = await eventually(logged)
    await _settled(server, delivery_id, attempts=1)
    return Failed(tenant, request_id, delivery_id)


# webhooks list


async def test_list_shows_the_failed_delivery_as_a_table_and_as_json(cli: Cli, server: Server) -> None:
    failed = await _failed_delivery(cli, server, "wh-list")

    result = cli("webhooks", "list", "--tenant", "wh-list")

    assert result.code == 0, result.err
    header, *rows = result.out.splitlines()
    assert header.split() == ["ID", "TENANT", "REQUEST", "STATE", "ATTEMPTS", "LAST", "STATUS", "CREATED"]
    [row] = rows
    assert row.split()[:6] == [failed.delivery_id, "wh-list", failed.request_id, "failed", "1", "404"]
    assert header.index("LAST STATUS") == row.index("404"), "columns are aligned"
    as_json = cli("webhooks", "list", "--tenant", "wh-list", "--json")
    assert as_json.code == 0, as_json.err
    payload = json.loads(as_json.out)
    assert payload["next"] is None
    [delivery] = payload["deliveries"]
    assert (delivery["id"], delivery["state"], delivery["last_status"]) == (failed.delivery_id, "failed", 404)


async def test_list_filters_by_state_and_request(cli: Cli, server: Server) -> None:
    failed = await _failed_delivery(cli, server, "wh-filter")

    by_state = cli("webhooks", "list", "--tenant", "wh-filter", "--state", "failed")
    none_delivered = cli("webhooks", "list", "--tenant", "wh-filter", "--state", "delivered")
    by_request = cli("webhooks", "list", "--request-id", failed.request_id, "--json")

    assert by_state.code == 0, by_state.err
    assert re.search(rf"^{failed.delivery_id}\s+wh-filter\s+{failed.request_id}\s+failed\s", by_state.out, re.MULTILINE)
    assert none_delivered.code == 0, none_delivered.err
    assert none_delivered.out == "No deliveries.\n"
    assert [d["id"] for d in json.loads(by_request.out)["deliveries"]] == [failed.delivery_id]


async def test_list_prints_the_cursor_of_the_next_page(cli: Cli, server: Server) -> None:
    older = await _failed_delivery(cli, server, "wh-pages")
    key = json.loads(cli("keys", "create", "wh-pages", "--json").out)["key"]
    newer = await _failed_delivery(cli, server, "wh-pages", key)  # after the first has failed: a later timestamp

    first = cli("webhooks", "list", "--tenant", "wh-pages", "--limit", "1")

    assert first.code == 0, first.err
    assert newer.delivery_id in first.out
    assert older.delivery_id not in first.out
    cursor = re.search(r"^Older deliveries: add --before (\d+:msg_\w+)$", first.out, re.MULTILINE)
    assert cursor, first.out
    second = cli("webhooks", "list", "--tenant", "wh-pages", "--limit", "1", "--before", cursor.group(1), "--json")
    assert second.code == 0, second.err
    assert [d["id"] for d in json.loads(second.out)["deliveries"]] == [older.delivery_id]


# webhooks show


async def test_show_prints_the_fields_then_one_line_per_attempt(cli: Cli, server: Server) -> None:
    failed = await _failed_delivery(cli, server, "wh-show")

    result = cli("webhooks", "show", failed.delivery_id)

    assert result.code == 0, result.err
    assert re.search(rf"^id\s+{failed.delivery_id}$", result.out, re.MULTILINE), result.out
    assert re.search(r"^state\s+failed$", result.out, re.MULTILINE)
    assert re.search(rf"^url\s+{re.escape(HOOK)}$", result.out, re.MULTILINE)
    assert re.search(r"^last_error\s+HTTP 404$", result.out, re.MULTILINE)
    assert "Attempts (1):" in result.out
    attempt = re.search(r"^1\s+(\S+)\s+404\s+([\d.]+) ms\s+final$", result.out, re.MULTILINE)
    assert attempt, result.out
    assert datetime.fromisoformat(attempt.group(1)).tzinfo is not None
    as_json = json.loads(cli("webhooks", "show", failed.delivery_id, "--json").out)
    assert [(a["status_code"], a["result"]) for a in as_json["history"]] == [(404, "final")]
    assert json.loads(as_json["body"])["request_id"] == failed.request_id


# webhooks redeliver


async def test_redeliver_one_queues_it_again_with_the_same_webhook_id(cli: Cli, server: Server) -> None:
    failed = await _failed_delivery(cli, server, "wh-again")

    result = cli("webhooks", "redeliver", failed.delivery_id)

    assert result.code == 0, result.err
    assert f"Queued delivery {failed.delivery_id} again, with the same webhook-id." in result.out
    assert re.search(r"^replays\s+1$", result.out, re.MULTILINE), result.out
    again = await _settled(server, failed.delivery_id, attempts=2)
    assert again["replays"] == 1
    assert len(server.receiver.of(failed.delivery_id)) == 2


async def test_redeliver_since_replays_the_tenants_failures(cli: Cli, server: Server) -> None:
    failed = await _failed_delivery(cli, server, "wh-since")

    future = cli("webhooks", "redeliver", "--tenant", "wh-since", "--since", "2999-01-01T00:00:00Z", "--json")
    result = cli("webhooks", "redeliver", "--tenant", "wh-since", "--since", "1h")

    assert future.code == 0, future.err
    assert json.loads(future.out) == {"redelivered": []}
    assert result.code == 0, result.err
    [headline, listed] = result.out.splitlines()
    sent = re.fullmatch(
        r"Queued 1 failed delivery of tenant wh-since created since (\S+) again \(each keeps its webhook-id\):",
        headline,
    )
    assert sent, headline
    assert abs(datetime.fromisoformat(sent.group(1)).timestamp() - (datetime.now(UTC).timestamp() - 3600)) < 60
    assert listed == f"  {failed.delivery_id}"
    await _settled(server, failed.delivery_id, attempts=2)
    nothing = cli("webhooks", "redeliver", "--tenant", "wh-since", "--since", "2999-01-01T00:00:00")
    assert nothing.code == 0, nothing.err
    assert "No failed deliveries of tenant wh-since created since 2999-01-01T" in nothing.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("webhooks", "redeliver"), "nothing to redeliver: give DELIVERY_ID, or --tenant and --since"),
        (("webhooks", "redeliver", "msg_x", "--tenant", "t", "--since", "1h"), "do not go together"),
        (("webhooks", "redeliver", "msg_x", "--since", "1h"), "do not go together"),
        (("webhooks", "redeliver", "--tenant", "t"), "--tenant needs --since"),
        (("webhooks", "redeliver", "--since", "1h"), "--since needs --tenant"),
        (("webhooks", "redeliver", "--tenant", "t", "--since", "yesterday"), "not an ISO 8601 time"),
        (("webhooks", "list", "--state", "lost"), "invalid choice"),
        (("webhooks", "list", "--limit", "0"), "from 1 to 500"),
        (("webhooks", "list", "--limit", "501"), "from 1 to 500"),
        (("webhooks", "list", "--before", "yesterday"), "not a cursor"),
        (("webhooks", "show"), "DELIVERY_ID"),
        (("webhooks",), "ACTION"),
        (("tenants", "webhook-secret"), "TENANT"),
    ],
)
def test_usage_errors_exit_2(cli: Cli, args: tuple[str, ...], message: str) -> None:
    result = cli(*args)

    assert result.code == 2
    assert message in result.err
    assert result.out == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("webhooks", "show", "msg_nope"), "HTTP 404 (delivery_not_found): Delivery not found"),
        (("webhooks", "redeliver", "msg_nope"), "HTTP 404 (delivery_not_found): Delivery not found"),
        (("webhooks", "redeliver", "--tenant", "wh-nobody", "--since", "1h"), "HTTP 404 (tenant_not_found)"),
        (("tenants", "webhook-secret", "wh-nobody"), "HTTP 404 (tenant_not_found)"),
    ],
)
def test_unknown_ids_exit_1_with_the_detail(cli: Cli, args: tuple[str, ...], message: str) -> None:
    result = cli(*args)

    assert result.code == 1
    assert result.err.startswith(f"seedance-gateway: error: {message}"), result.err
    assert result.out == ""


# tenants webhook-secret


async def test_webhook_secret_is_printed_once_and_signs_the_next_attempt(cli: Cli, server: Server) -> None:
    failed = await _failed_delivery(cli, server, "wh-secret")

    result = cli("tenants", "webhook-secret", "wh-secret")

    assert result.code == 0, result.err
    printed = re.search(r"^secret  (whsec_\S+)$", result.out, re.MULTILINE)
    assert printed, result.out
    until = re.search(r"^previous_valid_until  (\S+)$", result.out, re.MULTILINE)
    assert until, result.out
    assert datetime.fromisoformat(until.group(1)) > datetime.now(UTC)
    assert "Store this secret now: it is not shown again." in result.err
    assert f"keeps signing beside it until {until.group(1)}" in result.err
    assert printed.group(1) not in result.err
    assert cli("webhooks", "redeliver", failed.delivery_id).code == 0
    await _settled(server, failed.delivery_id, attempts=2)
    replayed = server.receiver.of(failed.delivery_id)[-1]
    assert Webhook(printed.group(1)).verify(replayed.content, dict(replayed.headers))["request_id"] == failed.request_id
    rotated = cli("tenants", "webhook-secret", "wh-secret", "--json")
    assert rotated.code == 0, rotated.err
    body = json.loads(rotated.out)
    assert set(body) == {"secret", "previous_valid_until"}
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != printed.group(1)
    assert "not shown again" in rotated.err


# Parsing


def test_since_is_sent_with_an_explicit_offset() -> None:
    assert since("2030-01-31T00:00:00Z") == "2030-01-31T00:00:00Z"
    assert since("2030-01-31T02:00:00+02:00") == "2030-01-31T02:00:00+02:00"
    assert datetime.fromisoformat(since("2030-01-31T00:00:00")).tzinfo is not None
    a_day_ago = datetime.fromisoformat(since("1d")).timestamp()
    assert abs(a_day_ago - (datetime.now(UTC).timestamp() - 86400)) < 5
