"""The ``webhooks`` subcommands and ``tenants webhook-secret``: the delivery log, replays and a tenant's secret."""

from __future__ import annotations

import argparse
from typing import Any

from service.admin_cli.bodies import UsageError
from service.admin_cli.client import AdminClient
from service.admin_cli.render import Output, clean, fields, table

DELIVERY_HEADERS = ("ID", "TENANT", "REQUEST", "STATE", "ATTEMPTS", "LAST STATUS", "CREATED")
DELIVERY_ORDER = (
    "id",
    "tenant_id",
    "request_id",
    "url",
    "state",
    "attempts",
    "replays",
    "created_at",
    "next_attempt_at",
    "delivered_at",
    "last_status",
    "last_error",
)
ATTEMPT_HEADERS = ("#", "AT", "STATUS", "LATENCY", "RESULT")
WHSEC_ONCE_NOTE = "Store this secret now: it is not shown again."
REDELIVER_USAGE = "give DELIVERY_ID, or --tenant and --since (every failed delivery of the tenant since then)"


def webhooks_list(client: AdminClient, args: argparse.Namespace, out: Output) -> int:
    query: dict[str, str | int] = {
        name: value
        for name, value in (
            ("tenant", args.tenant),
            ("request_id", args.request_id),
            ("state", args.state),
            ("limit", args.limit),
            ("before", args.before),
        )
        if value is not None
    }
    payload = client.list_deliveries(query)
    if out.as_json:
        out.json(payload)
        return 0
    deliveries = payload.get("deliveries", []) if isinstance(payload, dict) else []
    cursor = payload.get("next") if isinstance(payload, dict) else None
    if deliveries:
        out.lines(table(DELIVERY_HEADERS, [_delivery_row(delivery) for delivery in deliveries]))
    else:
        out.line("No matching deliveries on this page." if cursor else "No deliveries.")
    if cursor:
        out.line()
        out.line(f"Older deliveries: add --before {clean(cursor)}")
    return 0


def _delivery_row(delivery: Any) -> list[Any]:
    if not isinstance(delivery, dict):
        return [delivery, None, None, None, None, None, None]
    return [
        delivery.get("id"),
        delivery.get("tenant_id"),
        delivery.get("request_id"),
        delivery.get("state"),
        delivery.get("attempts"),
        _last_status(delivery),
        delivery.get("created_at"),
    ]


def _last_status(delivery: dict[str, Any]) -> Any:
    """The receiver's last HTTP status, else what went wrong without one (timeout, refused destination)."""
    status = delivery.get("last_status")
    return status if status is not None else delivery.get("last_error")


def webhooks_show(client: AdminClient, args: argparse.Namespace, out: Output) -> int:
    delivery = client.get_delivery(args.delivery_id)
    if out.as_json:
        out.json(delivery)
        return 0
    if not isinstance(delivery, dict):
        out.line(clean(delivery))
        return 0
    record = dict(delivery)
    history = record.pop("history", None)
    ordered = {name: record[name] for name in DELIVERY_ORDER if name in record}
    ordered |= {name: value for name, value in record.items() if name not in ordered}  # body, and any new field
    out.lines(fields(ordered))
    out.line()
    attempts = history if isinstance(history, list) else []
    if not attempts:
        out.line("No attempts yet.")
        return 0
    out.line(f"Attempts ({len(attempts)}):")
    out.lines(table(ATTEMPT_HEADERS, [_attempt_row(number, a) for number, a in enumerate(attempts, start=1)]))
    return 0


def _attempt_row(number: int, attempt: Any) -> list[Any]:
    if not isinstance(attempt, dict):
        return [number, attempt, None, None, None]
    status = attempt.get("status_code")
    latency = attempt.get("latency_ms")
    shown_latency = f"{latency:g} ms" if isinstance(latency, int | float) else latency
    outcome = status if status is not None else attempt.get("error")
    return [number, attempt.get("at"), outcome, shown_latency, attempt.get("result")]


def webhooks_redeliver(client: AdminClient, args: argparse.Namespace, out: Output) -> int:
    _check_redeliver_args(args)
    if args.delivery_id is not None:
        return _redeliver_one(client, args.delivery_id, out)
    result = client.redeliver_failed(args.tenant, {"since": args.since})
    if out.as_json:
        out.json(result)
        return 0
    replayed = result.get("redelivered", []) if isinstance(result, dict) else []
    scope = f"of tenant {clean(args.tenant)} created since {clean(args.since)}"
    if not replayed:
        out.line(f"No failed deliveries {scope}; nothing was queued.")
        return 0
    noun = "delivery" if len(replayed) == 1 else "deliveries"
    out.line(f"Queued {len(replayed)} failed {noun} {scope} again (each keeps its webhook-id):")
    out.lines(f"  {clean(delivery_id)}" for delivery_id in replayed)
    return 0


def _check_redeliver_args(args: argparse.Namespace) -> None:
    """Exactly one of the two forms: ``DELIVERY_ID``, or ``--tenant`` with ``--since``."""
    by_tenant = args.tenant is not None or args.since is not None
    if args.delivery_id is not None and by_tenant:
        raise UsageError(f"DELIVERY_ID and --tenant/--since do not go together: {REDELIVER_USAGE}")
    if args.delivery_id is None and not by_tenant:
        raise UsageError(f"nothing to redeliver: {REDELIVER_USAGE}")
    if by_tenant and args.since is None:
        raise UsageError("--tenant needs --since: the failed deliveries created since when?")
    if by_tenant and args.tenant is None:
        raise UsageError("--since needs --tenant: whose failed deliveries?")


def _redeliver_one(client: AdminClient, delivery_id: str, out: Output) -> int:
    queued = client.redeliver(delivery_id)
    if out.as_json:
        out.json(queued)
        return 0
    out.line(f"Queued delivery {clean(delivery_id)} again, with the same webhook-id.")
    if isinstance(queued, dict):
        out.lines(fields({name: queued[name] for name in DELIVERY_ORDER if name in queued}))
    return 0


def tenants_webhook_secret(client: AdminClient, args: argparse.Namespace, out: Output) -> int:
    issued = client.rotate_webhook_secret(args.tenant)
    until = issued.get("previous_valid_until") if isinstance(issued, dict) else None
    previous = (
        f"The previous secret keeps signing beside it until {clean(until)}."
        if until
        else "The previous secret no longer signs."
    )
    if out.as_json:
        out.json(issued)
        out.note(f"{WHSEC_ONCE_NOTE} {previous}")
        return 0
    secret = issued.get("secret") if isinstance(issued, dict) else issued
    out.line(f"Rotated the webhook secret of tenant {clean(args.tenant)}.")
    out.line(f"previous_valid_until  {clean(until)}")
    out.line()
    out.line(f"secret  {clean(secret)}")
    out.line()
    out.note(f"{WHSEC_ONCE_NOTE} {previous}")
    return 0
