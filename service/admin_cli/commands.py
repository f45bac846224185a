"""The ``tenants`` and ``keys`` subcommands: one function each, calling the admin API and printing the answer."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from service.admin_cli.bodies import UsageError, load_json_object, tenant_body
from service.admin_cli.client import AdminClient
from service.admin_cli.render import Output, clean, fields, policy_summary, table

TENANT_ORDER = ("id", "name", "disabled", "sandbox", "created_at", "updated_at", "policy", "metadata", "usage")
KEY_COLUMNS = ("key_id", "name", "state", "created_at", "expires_at", "last_used_at", "rotated_to")
KEY_ONCE_NOTE = "Store this key now: it is not shown again (only its hash is kept)."


# Tenants


def tenants_create(client: AdminClient, args: argparse.Namespace, out: Output) -> int:
    body = tenant_body(args, load_json_object(args.from_json))
    if body.get("id", args.tenant) != args.tenant:
        raise UsageError(f"the JSON body's id {body['id']!r} differs from the TENANT argument {args.tenant!r}")
    tenant = client.create_tenant({"id": args.tenant, **body})
    return _show_tenant(out, tenant, f"Created tenant {clean(args.tenant)}.")


def tenants_list(client: AdminClient, _args: argparse.Namespace, out: Output) -> int:
    payload = client.list_tenants()
    if out.as_json:
        out.json(payload)
        return 0
    tenants = payload.get("tenants", []) if isinstance(payload, dict) else []
    if not tenants:
        out.line("No tenants.")
        return 0
    rows = [_tenant_row(tenant) for tenant in tenants]
    out.lines(table(["ID", "NAME", "STATE", "LIMITS", "CREATED"], rows))
    return 0


def _tenant_row(tenant: Any) -> list[Any]:
    if not isinstance(tenant, dict):
        return [tenant, None, None, None, None]
    state = "disabled" if tenant.get("disabled") else "enabled"
    if tenant.get("sandbox"):
        state += " (sandbox)"
    return [tenant.get("id"), tenant.get("name"), state, policy_summary(tenant.get("policy")), tenant.get("created_at")]


def tenants_show(client: AdminClient, args: argparse.Namespace, out: Output) -> int:
    return _show_tenant(out, client.get_tenant(args.tenant))


def tenants_update(client: AdminClient, args: argparse.Namespace, out: Output) -> int:
    patch = tenant_body(args, load_json_object(args.from_json))
    if not patch:
        raise UsageError("nothing to update: give at least one flag, --set or --from-json")
    tenant = client.update_tenant(args.tenant, patch)
    return _show_tenant(out, tenant, f"Updated tenant {clean(args.tenant)}.")


def tenants_delete(client: AdminClient, args: argparse.Namespace, out: Output) -> int:
    if not args.yes:
        _confirm_delete(args.tenant, out)
    result = client.delete_tenant(args.tenant)
    if out.as_json:
        out.json(result)
        return 0
    deleted = result.get("deleted_keys", []) if isinstance(result, dict) else []
    suffix = f" and its {len(deleted)} key(s): {clean(deleted)}" if deleted else " (it had no keys)"
    out.line(f"Deleted tenant {clean(args.tenant)}{suffix}.")
    return 0


def _confirm_delete(tenant_id: str, out: Output) -> None:
    """Ask on the terminal; without a terminal, refuse (a script must say --yes)."""
    if not sys.stdin.isatty():
        raise UsageError("refusing to delete without confirmation: stdin is not a terminal; pass --yes")
    out.prompt(f"Delete tenant {clean(tenant_id)}? Its keys stop working at once. Type the tenant id to confirm: ")
    answer = sys.stdin.readline().strip()
    if answer != tenant_id:
        raise UsageError("not confirmed; nothing was deleted")


def _show_tenant(out: Output, tenant: Any, headline: str | None = None) -> int:
    if out.as_json:
        out.json(tenant)
        return 0
    if headline:
        out.line(headline)
    if isinstance(tenant, dict):
        ordered = {name: tenant[name] for name in TENANT_ORDER if name in tenant}
        ordered |= {name: value for name, value in tenant.items() if name not in ordered}
        if ordered.get("usage") is None:
            ordered.pop("usage", None)  # only ``show`` reports usage; elsewhere it is null
        if isinstance(ordered.get("policy"), dict):
            ordered["policy"] = {k: "(no limit)" if v is None else v for k, v in ordered["policy"].items()}
        out.lines(fields(ordered))
    else:
        out.line(clean(tenant))
    return 0


# Keys


def keys_create(client: AdminClient, args: argparse.Namespace, out: Output) -> int:
    body = {name: value for name, value in (("name", args.name), ("expires_at", args.expires_at)) if value}
    issued = client.create_key(args.tenant, body)
    return _show_issued(out, issued, f"Created key for tenant {clean(args.tenant)}.")


def keys_list(client: AdminClient, args: argparse.Namespace, out: Output) -> int:
    payload = client.list_keys(args.tenant)
    if out.as_json:
        out.json(payload)
        return 0
    keys = payload.get("keys", []) if isinstance(payload, dict) else []
    if not keys:
        out.line(f"Tenant {clean(args.tenant)} has no keys.")
        return 0
    headers = ["KEY_ID", "NAME", "STATE", "CREATED", "EXPIRES", "LAST_USED", "ROTATED_TO"]
    out.lines(table(headers, [[key.get(column) for column in KEY_COLUMNS] for key in keys]))
    return 0


def keys_revoke(client: AdminClient, args: argparse.Namespace, out: Output) -> int:
    record = client.revoke_key(args.tenant, args.key_id)
    if out.as_json:
        out.json(record)
        return 0
    out.line(f"Revoked key {clean(args.key_id)} of tenant {clean(args.tenant)}; it stops working at once.")
    out.lines(fields(record if isinstance(record, dict) else {"result": record}))
    return 0


def keys_rotate(client: AdminClient, args: argparse.Namespace, out: Output) -> int:
    body: dict[str, Any] = {"grace_seconds": args.grace}
    if args.name:
        body["name"] = args.name
    rotated = client.rotate_key(args.tenant, args.key_id, body)
    previous = rotated.get("previous") if isinstance(rotated, dict) else None
    until = previous.get("expires_at") if isinstance(previous, dict) else None
    headline = f"Rotated key {clean(args.key_id)}; it keeps working until {clean(until)}."
    return _show_issued(out, rotated, headline)


def _show_issued(out: Output, issued: Any, headline: str) -> int:
    """A newly issued key: its metadata, then the full key on a line of its own, and the note it is shown once."""
    if out.as_json:
        out.json(issued)
        out.note(KEY_ONCE_NOTE)
        return 0
    record = dict(issued) if isinstance(issued, dict) else {}
    key = record.pop("key", None)
    record.pop("previous", None)
    out.line(headline)
    out.lines(fields(record))
    out.line()
    out.line(f"key  {clean(key)}")
    out.line()
    out.note(KEY_ONCE_NOTE)
    return 0
