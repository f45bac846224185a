"""The command line of the ``tenants``, ``keys`` and ``webhooks`` groups, and ``register`` to add them to a parser."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TypeAlias

from service.admin_cli import commands, webhook_commands
from service.admin_cli.bodies import assignment, cursor, duration, expiry, meta, page_size, since, usd_micros
from service.admin_cli.runner import DEFAULT_URL, run

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # noqa: SLF001 - argparse has no public name for it

TENANTS_HELP = "Manage tenants through the admin API of a running gateway"
KEYS_HELP = "Manage a tenant's API keys through the admin API of a running gateway"
WEBHOOKS_HELP = "Inspect and replay webhook deliveries through the admin API of a running gateway"


def register(subparsers: Subparsers) -> None:
    """Add the ``tenants``, ``keys`` and ``webhooks`` groups; each leaf command runs through ``handler`` (see
    ``runner.run``)."""
    common = _common_options()
    tenants = subparsers.add_parser("tenants", help=TENANTS_HELP, description=TENANTS_HELP, parents=[common])
    tenants.set_defaults(handler=run)
    _register_tenants(tenants.add_subparsers(dest="admin_command", required=True, metavar="ACTION"), common)
    keys = subparsers.add_parser("keys", help=KEYS_HELP, description=KEYS_HELP, parents=[common])
    keys.set_defaults(handler=run)
    _register_keys(keys.add_subparsers(dest="admin_command", required=True, metavar="ACTION"), common)
    webhooks = subparsers.add_parser("webhooks", help=WEBHOOKS_HELP, description=WEBHOOKS_HELP, parents=[common])
    webhooks.set_defaults(handler=run)
    _register_webhooks(webhooks.add_subparsers(dest="admin_command", required=True, metavar="ACTION"), common)


def main(argv: Sequence[str] | None = None) -> int:
    """The operator groups on their own, as ``seedance-gateway`` runs them."""
    parser = argparse.ArgumentParser(prog="seedance-gateway", description="Operator commands over the admin API")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def _common_options() -> argparse.ArgumentParser:
    """Accepted before or after the action (``tenants --json list`` or ``tenants list --json``); SUPPRESS keeps
    the action's parser from overwriting a value given before it."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = common.add_argument_group("connection and output")
    group.add_argument("--url", help=f"gateway base URL (env GATEWAY_ADMIN_URL; default {DEFAULT_URL})")
    group.add_argument(
        "--token", help="admin token (env GATEWAY_ADMIN_TOKEN, preferred: a flag is visible in the process list)"
    )
    group.add_argument(
        "--cacert", metavar="PEM", help="CA bundle to verify the gateway's TLS (env GATEWAY_ADMIN_CACERT)"
    )
    group.add_argument("--actor", help="operator name for the audit log (default: $USER@hostname)")
    group.add_argument("--timeout", type=_positive_float, metavar="SECONDS", help="per-request timeout (default 30)")
    group.add_argument("--json", action="store_true", help="print the raw JSON response")
    return common


def _register_tenants(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    create = actions.add_parser("create", help="create a tenant", parents=[common])
    create.add_argument("tenant", metavar="TENANT", help="tenant id: lowercase letters, digits, '-' and '_'")
    _tenant_flags(create)
    create.set_defaults(admin_action=commands.tenants_create)

    actions.add_parser("list", help="list tenants", parents=[common]).set_defaults(admin_action=commands.tenants_list)

    show = actions.add_parser("show", help="show a tenant, its policy and current usage", parents=[common])
    show.add_argument("tenant", metavar="TENANT")
    show.set_defaults(admin_action=commands.tenants_show)

    update = actions.add_parser(
        "update", help="change a tenant (a JSON merge patch of only the flags given)", parents=[common]
    )
    update.add_argument("tenant", metavar="TENANT")
    _tenant_flags(update)
    update.set_defaults(admin_action=commands.tenants_update)

    remove = actions.add_parser("delete", help="delete a tenant and all its keys", parents=[common])
    remove.add_argument("tenant", metavar="TENANT")
    remove.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    remove.set_defaults(admin_action=commands.tenants_delete)

    secret = actions.add_parser(
        "webhook-secret",
        help="rotate the tenant's webhook signing secret (the new one is printed once)",
        parents=[common],
    )
    secret.add_argument("tenant", metavar="TENANT")
    secret.set_defaults(admin_action=webhook_commands.tenants_webhook_secret)


def _tenant_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``create`` and ``update``; on update only the flags given are sent."""
    parser.add_argument("--name", help="display name")
    state = parser.add_mutually_exclusive_group()
    state.add_argument(
        "--disabled", dest="disabled", action="store_const", const=True, default=None, help="refuse its keys (403)"
    )
    state.add_argument(
        "--enabled", dest="disabled", action="store_const", const=False, default=None, help="accept them"
    )
    sandbox = parser.add_mutually_exclusive_group()
    sandbox.add_argument(
        "--sandbox",
        dest="sandbox",
        action="store_const",
        const=True,
        default=None,
        help="serve it from the built-in simulator, never charged",
    )
    sandbox.add_argument(
        "--no-sandbox", dest="sandbox", action="store_const", const=False, default=None, help="serve it from fal"
    )
    _policy_flags(parser.add_argument_group("policy (left out: no limit; remove one with --set policy.NAME=null)"))
    _budget_flags(parser.add_argument_group("budget (money in USD, stored as integer micro-USD)"))
    body = parser.add_argument_group("any field")
    body.add_argument("--meta", type=meta, action="append", metavar="KEY=VALUE", help="a metadata string")
    body.add_argument(
        "--set",
        type=assignment,
        action="append",
        metavar="PATH=JSON",
        help="any field by dotted path, e.g. budget.limit_micros=50000000 or policy.max_duration=null (removes)",
    )
    body.add_argument("--from-json", metavar="FILE", help="start from the JSON object in FILE ('-': stdin)")


def _budget_flags(budget: argparse._ArgumentGroup) -> None:
    budget.add_argument("--budget-limit-usd", type=usd_micros, metavar="USD", help="hard limit per period, e.g. 50")
    budget.add_argument("--budget-soft-limit-usd", type=usd_micros, metavar="USD", help="alert threshold")
    budget.add_argument("--budget-period", choices=["day", "week", "month", "total"], help="default: month")
    budget.add_argument("--no-budget", action="store_true", help="remove the budget (unlimited)")


def _policy_flags(policy: argparse._ArgumentGroup) -> None:
    policy.add_argument(
        "--allowed-endpoint",
        dest="allowed_endpoints",
        action="append",
        metavar="ENDPOINT_ID",
        help="an endpoint it may call (repeat for more; given at all: the list replaces the old one)",
    )
    policy.add_argument("--max-resolution", metavar="RESOLUTION", help="e.g. 720p")
    policy.add_argument("--max-duration", type=int, metavar="SECONDS", help="longest video duration")
    audio = policy.add_mutually_exclusive_group()
    audio.add_argument(
        "--allow-audio", dest="allow_audio", action="store_const", const=True, default=None, help="may generate audio"
    )
    audio.add_argument(
        "--no-audio", dest="allow_audio", action="store_const", const=False, default=None, help="must not"
    )
    policy.add_argument("--requests-per-minute", type=int, metavar="N", help="request rate limit")
    policy.add_argument("--max-concurrent", type=int, metavar="N", help="most unfinished jobs at once")


def _register_keys(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    create = actions.add_parser("create", help="issue a key (the full key is printed once)", parents=[common])
    create.add_argument("tenant", metavar="TENANT")
    create.add_argument("--name", help="a label for the key")
    create.add_argument(
        "--expires-at", type=expiry, metavar="WHEN", help="ISO 8601 time (no offset: local) or a duration, e.g. 90d"
    )
    create.set_defaults(admin_action=commands.keys_create)

    listing = actions.add_parser("list", help="list a tenant's keys (never their secrets)", parents=[common])
    listing.add_argument("tenant", metavar="TENANT")
    listing.set_defaults(admin_action=commands.keys_list)

    revoke = actions.add_parser("revoke", help="revoke a key at once", parents=[common])
    revoke.add_argument("tenant", metavar="TENANT")
    revoke.add_argument("key_id", metavar="KEY_ID")
    revoke.set_defaults(admin_action=commands.keys_revoke)

    rotate = actions.add_parser(
        "rotate", help="issue a successor; the old key works for a grace period", parents=[common]
    )
    rotate.add_argument("tenant", metavar="TENANT")
    rotate.add_argument("key_id", metavar="KEY_ID")
    rotate.add_argument(
        "--grace", type=duration, required=True, metavar="DURATION", help="seconds, or e.g. 30m, 1h, 2d"
    )
    rotate.add_argument("--name", help="name of the successor (default: the old key's)")
    rotate.set_defaults(admin_action=commands.keys_rotate)


def _register_webhooks(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    listing = actions.add_parser("list", help="list webhook deliveries, newest first", parents=[common])
    listing.add_argument("--tenant", metavar="TENANT", help="only this tenant's deliveries")
    listing.add_argument("--request-id", metavar="REQUEST_ID", help="only the delivery of this request")
    listing.add_argument("--state", choices=["pending", "delivered", "failed"], help="only deliveries in this state")
    listing.add_argument("--limit", type=page_size, metavar="N", help="deliveries per page, 1-500 (default 50)")
    listing.add_argument("--before", type=cursor, metavar="CURSOR", help="the next page, as a listing printed it")
    listing.set_defaults(admin_action=webhook_commands.webhooks_list)

    show = actions.add_parser("show", help="show a delivery and every attempt", parents=[common])
    show.add_argument("delivery_id", metavar="DELIVERY_ID")
    show.set_defaults(admin_action=webhook_commands.webhooks_show)

    redeliver = actions.add_parser(
        "redeliver",
        help="queue one delivery again, or every failed delivery of a tenant since a time",
        description="Queue a delivery again now, with the same webhook-id: give DELIVERY_ID, or --tenant and "
        "--since to replay every failed delivery of the tenant created since then.",
        parents=[common],
    )
    redeliver.add_argument("delivery_id", metavar="DELIVERY_ID", nargs="?", help="the delivery to queue again")
    redeliver.add_argument("--tenant", metavar="TENANT", help="replay this tenant's failed deliveries (with --since)")
    redeliver.add_argument(
        "--since", type=since, metavar="WHEN", help="ISO 8601 time (no offset: local) or a duration ago, e.g. 24h"
    )
    redeliver.set_defaults(admin_action=webhook_commands.webhooks_redeliver)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value
