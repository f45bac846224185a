"""Running one admin command: configuration from flags and environment, the client, and exit statuses."""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import ssl
from collections.abc import Mapping

import httpx

from service.admin_cli.bodies import UsageError
from service.admin_cli.client import AdminClient, ApiError, Connection, Unreachable
from service.admin_cli.render import Output, describe_error

PROG = "seedance-gateway"
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_ACTOR_LENGTH = 200
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def run(args: argparse.Namespace) -> int:
    """The ``handler`` of every tenants/keys/webhooks action. 0: done; 1: the gateway refused or could not be reached;
    2: a usage mistake. The environment is read here, per call."""
    out = Output(as_json=bool(getattr(args, "json", False)))
    token: str | None = None
    try:
        connection = connection_from(args, os.environ)
        token = connection.token
        with AdminClient(connection) as client:
            return int(args.admin_action(client, args, out))
    except UsageError as exc:
        _report(out, [str(exc)], token)
        return EXIT_USAGE
    except ApiError as exc:
        _report(out, describe_error(exc), token)
        return EXIT_FAILED
    except Unreachable as exc:
        _report(out, [f"cannot reach the gateway at {exc.url}: {exc.reason}", *_unreachable_hints(exc)], token)
        return EXIT_FAILED
    except KeyboardInterrupt:
        out.note(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED


def connection_from(args: argparse.Namespace, env: Mapping[str, str]) -> Connection:
    """Flags first, then ``GATEWAY_ADMIN_*`` variables, then defaults."""
    url = getattr(args, "url", None) or env.get("GATEWAY_ADMIN_URL") or DEFAULT_URL
    _check_url(url)
    token = (getattr(args, "token", None) or env.get("GATEWAY_ADMIN_TOKEN") or "").strip()
    if not token:
        raise UsageError("an admin token is required: set GATEWAY_ADMIN_TOKEN (or pass --token)")
    if not (token.isascii() and token.isprintable()):
        raise UsageError("the admin token contains characters that cannot be sent in an HTTP header")
    cacert = getattr(args, "cacert", None) or env.get("GATEWAY_ADMIN_CACERT")
    timeout = getattr(args, "timeout", None) or DEFAULT_TIMEOUT_SECONDS
    return Connection(
        base_url=url,
        token=token,
        actor=_actor(getattr(args, "actor", None), env),
        verify=_tls_context(cacert) if cacert else True,
        timeout_seconds=timeout,
    )


def _check_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UsageError(f"invalid --url/GATEWAY_ADMIN_URL {url!r}: {exc}") from None
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise UsageError(f"--url/GATEWAY_ADMIN_URL must be an http:// or https:// URL, got {url!r}")


def _actor(given: str | None, env: Mapping[str, str]) -> str:
    """The operator name sent as ``X-Gateway-Actor``: ``--actor``, else ``$USER@hostname``."""
    if given is not None:
        if not (given.strip() and given.isascii() and given.isprintable() and len(given) <= MAX_ACTOR_LENGTH):
            raise UsageError(f"--actor must be 1-{MAX_ACTOR_LENGTH} printable ASCII characters")
        return given.strip()
    user = env.get("USER")
    if not user:
        try:
            user = getpass.getuser()
        except (OSError, KeyError):
            user = "unknown"
    actor = f"{user}@{socket.gethostname()}"
    safe = "".join(char if char.isascii() and char.isprintable() else "?" for char in actor)
    return safe[:MAX_ACTOR_LENGTH]


def _tls_context(cacert: str) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=cacert)
    except OSError as exc:  # missing file, or not a PEM bundle (ssl.SSLError is an OSError)
        raise UsageError(f"cannot use CA bundle {cacert!r}: {exc.strerror or exc}") from None


def _unreachable_hints(exc: Unreachable) -> list[str]:
    reason = exc.reason.lower()
    if "certificate" in reason or "ssl" in reason:
        return ["hint: pass the CA that signed the gateway's certificate with --cacert (or GATEWAY_ADMIN_CACERT)"]
    return ["hint: is the gateway running there? set the address with --url (or GATEWAY_ADMIN_URL)"]


def _report(out: Output, lines: list[str], token: str | None) -> None:
    """Errors go to stderr, with the admin token masked should anything ever echo it back."""
    for index, line in enumerate(lines):
        text = line.replace(token, "<admin token>") if token and len(token) >= 4 else line
        out.note(f"{PROG}: error: {text}" if index == 0 else text)
