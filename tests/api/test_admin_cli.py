"""The operator CLI (``seedance-gateway tenants|keys``) against the real gateway served by uvicorn on loopback."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import trustme
import uvicorn

from service.admin_cli.bodies import UsageError, assignment, duration, expiry, set_path
from service.admin_cli.render import table
from service.app import create_app
from service.cli import main as cli_main
from service.config import Settings
from service.simulator.app import SimulatorConfig, SimulatorState
from tests.support.admin import key_auth
from tests.support.endpoints import I2V, T2V
from tests.support.gateway import simulator_transport
from tests.support.loopback import free_port, wait_ready
from tests.support.redis import flush

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "cli-admin-token-0123456789"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Server:
    url: str
    settings: Settings


Cli = Callable[..., Result]


# The gateway, served for real


def _settings(redis_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        admin_token=ADMIN_TOKEN,
        fal_key="x",
        tracker_enabled=False,
    )


@contextmanager
def _serve(settings: Settings, *, certfile: Path | None = None) -> Iterator[str]:
    """The gateway app in uvicorn on a free loopback port, in a background thread; yields its base URL."""
    app = create_app(settings, upstream_transport=simulator_transport(SimulatorState(SimulatorConfig())))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    tls = {"ssl_certfile": str(certfile), "ssl_keyfile": str(certfile)} if certfile else {}
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", **tls)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    scheme = "https" if certfile else "http"
    try:
        wait_ready(f"{scheme}://127.0.0.1:{port}/healthz", alive=thread.is_alive, verify=False)
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive(), "the gateway thread did not stop"


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[Server]:
    # The suite's database, like every other module's; no test of this module runs alongside its server.
    settings = _settings(redis_url)
    flush(redis_url)
    saved = structlog.get_config()
    # The server thread logs through structlog, which by default prints to sys.stdout: capsys would capture it.
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    try:
        with _serve(settings) as url:
            yield Server(url=url, settings=settings)
    finally:
        structlog.configure(**saved)
        flush(redis_url)


@pytest.fixture
def cli(server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run ``seedance-gateway ARGS`` in-process (through service.cli.main) with the gateway's URL and token in the
    environment; an argparse usage error becomes exit status 2 like in a shell."""
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


def admin_get(server: Server, path: str) -> Any:
    response = httpx.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def me(server: Server, key: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/me", headers=key_auth(key), timeout=5)


def me_status_becomes(server: Server, key: str, status: int) -> bool:
    """Whether /v1/me answers ``status`` within 5 s: a revocation reaches the auth cache through pub/sub, which
    takes a moment after the admin call returns."""
    deadline = time.monotonic() + 5
    while me(server, key).status_code != status:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def printed_key(out: str) -> str:
    match = re.search(r"^key\s+(sgw_\S+:\S+)$", out, re.MULTILINE)
    assert match, out
    return match.group(1)


# Tenants


def test_create_sends_policy_flags_and_metadata(cli: Cli, server: Server) -> None:
    result = cli(
        "tenants", "create", "cli-create", "--name", "Acme Video",
        "--allowed-endpoint", T2V, "--allowed-endpoint", I2V,
        "--max-resolution", "720p", "--max-duration", "8", "--no-audio",
        "--requests-per-minute", "600", "--max-concurrent", "5",
        "--meta", "team=video", "--meta", "cost.center=42",
    )  # fmt: skip

    assert result.code == 0, result.err
    assert "Created tenant cli-create." in result.out
    assert re.search(r"^\s+max_duration\s+8$", result.out, re.MULTILINE), result.out
    stored = admin_get(server, "/admin/tenants/cli-create")
    assert stored["name"] == "Acme Video"
    assert stored["disabled"] is False
    assert {k: v for k, v in stored["policy"].items() if v is not None} == {
        "allowed_endpoints": sorted([T2V, I2V]),
        "max_resolution": "720p",
        "max_duration": 8,
        "allow_audio": False,
        "requests_per_minute": 600,
        "max_concurrent": 5,
    }
    assert stored["metadata"] == {"team": "video", "cost.center": "42"}


def test_create_from_json_file_then_flags_then_set(cli: Cli, server: Server, tmp_path: Path) -> None:
    body = {"name": "From File", "policy": {"max_duration": 6, "requests_per_minute": 10}, "metadata": {"a": 1}}
    (tmp_path / "tenant.json").write_text(json.dumps(body))

    result = cli(
        "tenants", "create", "cli-fromjson", "--from-json", str(tmp_path / "tenant.json"),
        "--requests-per-minute", "20", "--set", "policy.max_duration=null", "--set", 'metadata.b=["x"]', "--json",
    )  # fmt: skip

    assert result.code == 0, result.err
    printed = json.loads(result.out)
    assert printed["id"] == "cli-fromjson"
    assert printed["policy"]["requests_per_minute"] == 20
    assert printed["policy"]["max_duration"] is None
    assert printed["metadata"] == {"a": 1, "b": ["x"]}


def test_create_from_stdin_and_an_id_conflict(cli: Cli, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"name": "Piped"}'))
    assert cli("tenants", "create", "cli-stdin", "--from-json", "-").code == 0
    assert admin_get(server, "/admin/tenants/cli-stdin")["name"] == "Piped"

    monkeypatch.setattr(sys, "stdin", io.StringIO('{"id": "other", "name": "X"}'))
    conflict = cli("tenants", "create", "cli-stdin2", "--from-json", "-")
    assert conflict.code == 2
    assert "differs from the TENANT argument" in conflict.err

    monkeypatch.setattr(sys, "stdin", io.StringIO("[1, 2]"))
    assert "must hold a JSON object" in cli("tenants", "create", "cli-stdin3", "--from-json", "-").err


def test_list_prints_an_aligned_table_and_raw_json(cli: Cli) -> None:
    assert cli("tenants", "create", "cli-list-a", "--name", "A", "--requests-per-minute", "60").code == 0
    assert cli("tenants", "create", "cli-list-bb", "--name", "Bee Bee", "--disabled").code == 0

    result = cli("tenants", "list")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    header = lines[0]
    assert header.split() == ["ID", "NAME", "STATE", "LIMITS", "CREATED"]
    row_a = next(line for line in lines if line.startswith("cli-list-a "))
    row_b = next(line for line in lines if line.startswith("cli-list-bb "))
    assert row_a.index("A ") == row_b.index("Bee Bee") == header.index("NAME")
    assert row_a[header.index("STATE") :].startswith("enabled")
    assert row_b[header.index("STATE") :].startswith("disabled")
    assert row_a[header.index("LIMITS") :].startswith("rpm=60 ")
    assert row_b[header.index("LIMITS") :].startswith("unlimited")

    for args in (("tenants", "list", "--json"), ("tenants", "--json", "list")):
        listed = json.loads(cli(*args).out)
        assert {"cli-list-a", "cli-list-bb"} <= {t["id"] for t in listed["tenants"]}


def test_the_sandbox_flag_is_set_shown_and_cleared(cli: Cli, server: Server) -> None:
    created = cli("tenants", "create", "cli-sandbox", "--name", "Sandbox", "--sandbox")
    assert created.code == 0, created.err
    assert re.search(r"^sandbox\s+true$", created.out, re.MULTILINE), created.out
    assert admin_get(server, "/admin/tenants/cli-sandbox")["sandbox"] is True
    listed = cli("tenants", "list").out
    assert "enabled (sandbox)" in next(line for line in listed.splitlines() if line.startswith("cli-sandbox "))

    assert cli("tenants", "update", "cli-sandbox", "--no-sandbox").code == 0
    assert admin_get(server, "/admin/tenants/cli-sandbox")["sandbox"] is False
    assert cli("tenants", "update", "cli-sandbox", "--name", "Renamed").code == 0
    assert admin_get(server, "/admin/tenants/cli-sandbox")["sandbox"] is False, "an update without the flag keeps it"


def test_show_lists_fields_policy_and_usage(cli: Cli) -> None:
    assert cli("tenants", "create", "cli-show", "--name", "Show Me", "--max-concurrent", "3").code == 0

    result = cli("tenants", "show", "cli-show")

    assert result.code == 0, result.err
    assert re.search(r"^name\s+Show Me$", result.out, re.MULTILINE)
    assert re.search(r"^  max_concurrent\s+3$", result.out, re.MULTILINE)
    assert re.search(r"^  max_duration\s+\(no limit\)$", result.out, re.MULTILINE)
    assert re.search(r"^usage:$\n^  requests_last_minute\s+0$", result.out, re.MULTILINE)
    assert json.loads(cli("tenants", "show", "cli-show", "--json").out)["usage"] == {
        "requests_last_minute": 0,
        "in_flight": 0,
    }


def test_update_sends_a_merge_patch_of_only_the_flags_given(cli: Cli, server: Server) -> None:
    created = cli(
        "tenants", "create", "cli-update", "--name", "Before", "--max-duration", "10",
        "--requests-per-minute", "100", "--meta", "team=video", "--meta", "keep=yes",
    )  # fmt: skip
    assert created.code == 0, created.err

    result = cli(
        "tenants", "update", "cli-update", "--disabled", "--max-concurrent", "9",
        "--set", "policy.max_duration=null", "--set", "metadata.team=null", "--meta", "owner=bob",
    )  # fmt: skip

    assert result.code == 0, result.err
    assert "Updated tenant cli-update." in result.out
    stored = admin_get(server, "/admin/tenants/cli-update")
    assert stored["name"] == "Before"
    assert stored["disabled"] is True
    assert stored["policy"]["max_duration"] is None
    assert stored["policy"]["requests_per_minute"] == 100
    assert stored["policy"]["max_concurrent"] == 9
    assert stored["metadata"] == {"keep": "yes", "owner": "bob"}

    assert cli("tenants", "update", "cli-update", "--enabled").code == 0
    assert admin_get(server, "/admin/tenants/cli-update")["disabled"] is False

    nothing = cli("tenants", "update", "cli-update")
    assert nothing.code == 2
    assert "nothing to update" in nothing.err


def test_set_passes_unknown_fields_through_and_422_names_them(cli: Cli) -> None:
    assert cli("tenants", "create", "cli-set", "--name", "S").code == 0

    result = cli("tenants", "update", "cli-set", "--set", "surprise.limit=5")

    assert result.code == 1
    assert "HTTP 422" in result.err
    assert re.search(r"^  surprise: Unknown or read-only field; .* \[extra_forbidden\]$", result.err, re.MULTILINE)


def test_delete_refuses_without_confirmation(cli: Cli, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("tenants", "create", "cli-del", "--name", "D").code == 0

    monkeypatch.setattr(sys, "stdin", io.StringIO("cli-del\n"))  # not a terminal
    refused = cli("tenants", "delete", "cli-del")
    assert refused.code == 2
    assert "pass --yes" in refused.err

    monkeypatch.setattr(sys, "stdin", _Terminal("cli-de\n"))
    wrong = cli("tenants", "delete", "cli-del")
    assert wrong.code == 2
    assert "Type the tenant id to confirm" in wrong.err
    assert "nothing was deleted" in wrong.err
    assert admin_get(server, "/admin/tenants/cli-del")["id"] == "cli-del"

    monkeypatch.setattr(sys, "stdin", _Terminal("cli-del\n"))
    confirmed = cli("tenants", "delete", "cli-del")
    assert confirmed.code == 0, confirmed.err
    assert "Deleted tenant cli-del (it had no keys)." in confirmed.out
    assert cli("tenants", "show", "cli-del").code == 1


def test_delete_with_yes_reports_the_deleted_keys(cli: Cli) -> None:
    assert cli("tenants", "create", "cli-del-yes", "--name", "D").code == 0
    key_id = json.loads(cli("keys", "create", "cli-del-yes", "--json").out)["key_id"]

    result = cli("tenants", "delete", "cli-del-yes", "--yes")

    assert result.code == 0, result.err
    assert result.out.strip() == f"Deleted tenant cli-del-yes and its 1 key(s): {key_id}."


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# Keys


def test_key_lifecycle_create_list_rotate_revoke(cli: Cli, server: Server) -> None:
    assert cli("tenants", "create", "cli-keys", "--name", "Keys").code == 0

    created = cli("keys", "create", "cli-keys", "--name", "ci", "--expires-at", "30d")
    assert created.code == 0, created.err
    assert "not shown again" in created.err
    key = printed_key(created.out)
    key_id = key.split(":", 1)[0]
    response = me(server, key)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "cli-keys"
    assert response.json()["key_id"] == key_id

    listed = cli("keys", "list", "cli-keys")
    assert listed.code == 0, listed.err
    assert listed.out.splitlines()[0].split() == [
        "KEY_ID", "NAME", "STATE", "CREATED", "EXPIRES", "LAST_USED", "ROTATED_TO",
    ]  # fmt: skip
    assert re.search(rf"^{key_id}\s+ci\s+active\s", listed.out, re.MULTILINE), listed.out
    assert key.split(":", 1)[1] not in listed.out

    rotated = cli("keys", "rotate", "cli-keys", key_id, "--grace", "1h30m", "--json")
    assert rotated.code == 0, rotated.err
    body = json.loads(rotated.out)
    assert "not shown again" in rotated.err
    assert body["previous"]["key_id"] == key_id
    assert body["previous"]["rotated_to"] == body["key_id"]
    grace_end = datetime.fromisoformat(body["previous"]["expires_at"]).timestamp()
    assert abs(grace_end - (time.time() + 5400)) < 60
    assert me(server, key).status_code == 200  # still inside its grace period
    assert me(server, body["key"]).json()["key_id"] == body["key_id"]

    revoked = cli("keys", "revoke", "cli-keys", body["key_id"])
    assert revoked.code == 0, revoked.err
    assert re.search(r"^state\s+revoked$", revoked.out, re.MULTILINE)
    assert me_status_becomes(server, body["key"], 401)


def test_rotate_prints_the_new_key_once_with_a_note(cli: Cli, server: Server) -> None:
    assert cli("tenants", "create", "cli-rotate", "--name", "R").code == 0
    key = printed_key(cli("keys", "create", "cli-rotate").out)

    result = cli("keys", "rotate", "cli-rotate", key.split(":", 1)[0], "--grace", "0", "--name", "next")

    assert result.code == 0, result.err
    assert result.out.startswith(f"Rotated key {key.split(':', 1)[0]}; it keeps working until ")
    new_key = printed_key(result.out)
    assert result.out.count(new_key) == 1
    assert re.search(r"^name\s+next$", result.out, re.MULTILINE)
    assert "Store this key now: it is not shown again" in result.err
    assert me(server, new_key).status_code == 200
    assert me_status_becomes(server, key, 401)  # no grace: expired at once


# Errors


def test_wrong_token_exits_1_without_printing_any_token(cli: Cli) -> None:
    result = cli("tenants", "list", "--token", "wrong-token-abcdef")

    assert result.code == 1
    assert "HTTP 401 (unauthorized): Invalid admin token" in result.err
    assert "--token or GATEWAY_ADMIN_TOKEN" in result.err
    for secret in ("wrong-token-abcdef", ADMIN_TOKEN):
        assert secret not in result.out + result.err


def test_unknown_tenant_exits_1_with_the_detail(cli: Cli) -> None:
    result = cli("tenants", "show", "no-such-tenant")

    assert result.code == 1
    assert result.out == ""
    assert result.err.strip() == (
        "seedance-gateway: error: HTTP 404 (tenant_not_found): Tenant 'no-such-tenant' not found"
    )
    assert cli("keys", "list", "no-such-tenant").code == 1


def test_validation_error_shows_field_locations(cli: Cli) -> None:
    result = cli("tenants", "create", "cli-invalid", "--max-duration", "99")

    assert result.code == 1
    assert "HTTP 422: the gateway rejected the request:" in result.err
    assert re.search(r"^  name: Field required$", result.err, re.MULTILINE), result.err
    assert re.search(r"^  policy\.max_duration: .*12", result.err, re.MULTILINE), result.err


def test_unreachable_gateway_exits_1(cli: Cli) -> None:
    port = free_port()

    result = cli("tenants", "list", "--url", f"http://127.0.0.1:{port}")

    assert result.code == 1
    first, *rest = result.err.splitlines()
    assert first.startswith(
        f"seedance-gateway: error: cannot reach the gateway at http://127.0.0.1:{port}: ConnectError: "
    )
    assert first.endswith("Connection refused"), "the innermost cause names the problem"
    assert rest == ["hint: is the gateway running there? set the address with --url (or GATEWAY_ADMIN_URL)"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tenants", "list", "--url", "ftp://example.com"), "http:// or https://"),
        (("tenants", "list", "--cacert", "/nonexistent/ca.pem"), "cannot use CA bundle"),
        (("tenants", "list", "--actor", "bad\nactor"), "--actor must be"),
        (("tenants", "create", "x", "--set", "policy.max_duration"), "expected PATH=JSON"),
        (("tenants", "create", "x", "--set", "name=Acme"), "quote strings"),
        (("tenants", "create", "x", "--meta", "novalue"), "expected KEY=VALUE"),
        (("keys", "rotate", "t", "k"), "--grace"),
        (("keys", "rotate", "t", "k", "--grace", "soon"), "not a duration"),
        (("keys", "create", "t", "--expires-at", "tomorrow"), "not an ISO 8601 time"),
        (("tenants", "frobnicate"), "invalid choice"),
    ],
)
def test_usage_errors_exit_2(cli: Cli, args: tuple[str, ...], message: str) -> None:
    result = cli(*args)

    assert result.code == 2
    assert message in result.err


def test_a_missing_token_is_a_usage_error(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_ADMIN_TOKEN")

    result = cli("tenants", "list")

    assert result.code == 2
    assert "GATEWAY_ADMIN_TOKEN" in result.err


# Audit, wiring and TLS


def test_the_actor_lands_in_the_audit_log(cli: Cli, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("tenants", "create", "cli-audit", "--name", "Audit", "--actor", "carol@ops").code == 0
    monkeypatch.setenv("USER", "dave")
    assert cli("tenants", "update", "cli-audit", "--name", "Audited").code == 0

    entries = admin_get(server, "/admin/audit?limit=1000")["entries"]

    by_action = {e["action"]: e for e in entries if e["target"] == "cli-audit"}
    assert by_action["tenant.create"]["actor"]["operator"] == "carol@ops"
    assert by_action["tenant.update"]["actor"]["operator"] == f"dave@{socket.gethostname()}"
    assert by_action["tenant.update"]["actor"]["user_agent"].startswith("seedance-gateway-cli/")


def test_the_installed_command_is_wired(cli: Cli, server: Server) -> None:
    assert cli("tenants", "create", "cli-subprocess", "--name", "Sub").code == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= {"GATEWAY_ADMIN_URL": server.url, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}

    done = subprocess.run(
        [sys.executable, "-m", "service", "tenants", "list"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert re.search(r"^cli-subprocess\s+Sub\s+enabled\s+unlimited\s", done.stdout, re.MULTILINE), done.stdout
    assert ADMIN_TOKEN not in done.stdout + done.stderr


def test_tls_is_verified_against_cacert(cli: Cli, server: Server, tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))

    with _serve(server.settings, certfile=tmp_path / "server.pem") as url:
        untrusted = cli("tenants", "list", "--url", url)
        trusted = cli("tenants", "list", "--url", url, "--cacert", str(tmp_path / "ca.pem"), "--json")

    assert untrusted.code == 1
    assert "--cacert" in untrusted.err
    assert trusted.code == 0, trusted.err
    assert "tenants" in json.loads(trusted.out)


# Parsing helpers


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("90", 90), ("45s", 45), ("30m", 1800), ("1h", 3600), ("2d", 172800), ("1h30m", 5400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-5", "1.5h", "h", "1x", "1h 30m", "30mm"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)


def test_expiry_is_sent_with_an_explicit_offset() -> None:
    assert expiry("2030-01-31T00:00:00Z") == "2030-01-31T00:00:00Z"
    assert expiry("2030-01-31T02:00:00+02:00") == "2030-01-31T02:00:00+02:00"
    assert datetime.fromisoformat(expiry("2030-01-31T00:00:00")).tzinfo is not None
    in_a_day = datetime.fromisoformat(expiry("1d")).timestamp()
    assert abs(in_a_day - (datetime.now(UTC).timestamp() + 86400)) < 5


def test_set_paths_build_nested_objects_and_refuse_scalars() -> None:
    body: dict[str, Any] = {"policy": None, "name": "x"}
    set_path(body, assignment("policy.max_duration=8").path, 8)
    set_path(body, ("a", "b", "c"), None)
    assert body == {"policy": {"max_duration": 8}, "name": "x", "a": {"b": {"c": None}}}
    with pytest.raises(UsageError, match="name is"):
        set_path(body, ("name", "first"), "y")


def test_table_pads_columns_and_escapes_control_characters() -> None:
    assert table(["A", "BB"], [["x\ny", None], ["long", True]]) == ["A     BB", "x\\ny  -", "long  true"]


def test_budget_flags_set_change_and_remove_a_budget_in_exact_micros(cli: Cli, server: Server) -> None:
    created = cli("tenants", "create", "cli-budget", "--name", "B", "--budget-limit-usd", "50",
                  "--budget-soft-limit-usd", "40.000001", "--budget-period", "week")  # fmt: skip
    assert created.code == 0, created.err
    budget = admin_get(server, "/admin/tenants/cli-budget")["budget"]
    assert budget == {"limit_micros": 50_000_000, "soft_limit_micros": 40_000_001, "period": "week"}

    assert cli("tenants", "update", "cli-budget", "--budget-limit-usd", "$75.5").code == 0
    budget = admin_get(server, "/admin/tenants/cli-budget")["budget"]
    assert budget == {"limit_micros": 75_500_000, "soft_limit_micros": 40_000_001, "period": "week"}

    assert cli("tenants", "update", "cli-budget", "--no-budget").code == 0
    assert admin_get(server, "/admin/tenants/cli-budget")["budget"] is None


@pytest.mark.parametrize("amount", ["-1", "0.0000001", "abc", "nan"])
def test_budget_amounts_must_be_exact_non_negative_usd(cli: Cli, amount: str) -> None:
    assert cli("tenants", "create", "cli-bad-budget", "--name", "B", "--budget-limit-usd", amount).code == 2
