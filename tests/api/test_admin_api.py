"""The operator API: tenant and key lifecycle, request history, the audit log; and a tenant's view of itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.admin import ADMIN_TOKEN, key_auth
from tests.support.endpoints import I2V, T2V
from tests.support.gateway import Gateway, local

CONTRACT_BODY: dict[str, Any] = {
    "id": "acme",
    "name": "Acme",
    "disabled": False,
    "policy": {
        "allowed_endpoints": [I2V],
        "max_resolution": "1080p",
        "max_duration": 12,
        "allow_audio": True,
        "requests_per_minute": 600,
        "max_concurrent": 50,
    },
    "metadata": {"team": "video"},
}


def _contract_view(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of the API contract (the tenant record has more: budget, cache settings, timestamps)."""
    view = {k: body[k] for k in CONTRACT_BODY}
    view["policy"] = {k: body["policy"][k] for k in CONTRACT_BODY["policy"]}
    return view


async def _create(gateway: Gateway, body: dict[str, Any] | None = None) -> httpx.Response:
    return await gateway.client.post("/admin/tenants", json=body or CONTRACT_BODY, headers=gateway.admin)


async def _key(gateway: Gateway, tenant: str = "acme", **body: Any) -> dict[str, Any]:
    response = await gateway.client.post(f"/admin/tenants/{tenant}/keys", json=body or None, headers=gateway.admin)
    assert response.status_code == 201, response.text
    issued: dict[str, Any] = response.json()
    return issued


async def _call(gateway: Gateway, key: str) -> httpx.Response:
    return await gateway.client.get("/v1/me", headers=key_auth(key))


async def test_create_takes_the_contract_body_and_show_list_return_it(gateway: Gateway) -> None:
    created = await _create(gateway)
    assert created.status_code == 201
    body = created.json()
    assert _contract_view(body) == CONTRACT_BODY
    assert body["created_at"].endswith("Z")
    shown = (await gateway.client.get("/admin/tenants/acme", headers=gateway.admin)).json()
    assert shown["usage"] == {"requests_last_minute": 0, "in_flight": 0}
    listed = (await gateway.client.get("/admin/tenants", headers=gateway.admin)).json()["tenants"]
    assert [t["id"] for t in listed] == ["acme"]
    assert "uid" not in body, "internal ids stay internal"


async def test_omitted_policy_fields_mean_no_limit(gateway: Gateway) -> None:
    body = (await _create(gateway, {"id": "open", "name": "Open"})).json()
    assert set(body["policy"]) >= set(CONTRACT_BODY["policy"])
    assert all(value is None for value in body["policy"].values())
    assert body["budget"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"id": "a", "name": "A", "policy": {"max_resolution": "4k"}},
        {"id": "a", "name": "A", "policy": {"max_duration": 3}},
        {"id": "a", "name": "A", "policy": {"allowed_endpoints": ["fal-ai/flux/dev"]}},
        {"id": "a", "name": "A", "policy": {"requests_per_minute": 0}},
        {"id": "a", "name": "A", "policy": {"surprise": 1}},
        {"id": "a", "name": ""},
        {"id": "a", "name": "A", "metadata": {"blob": "x" * 20_000}},
    ],
)
async def test_invalid_tenant_bodies_get_422_and_create_nothing(gateway: Gateway, body: dict[str, Any]) -> None:
    response = await _create(gateway, body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)
    assert (await gateway.client.get("/admin/tenants/a", headers=gateway.admin)).status_code == 404


async def test_patch_is_a_merge_patch(gateway: Gateway) -> None:
    await _create(gateway)
    patch = {
        "name": "Acme Corp",
        "policy": {"max_duration": 8, "requests_per_minute": None},
        "metadata": {"cost_center": "42"},
    }
    response = await gateway.client.patch("/admin/tenants/acme", json=patch, headers=gateway.admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Acme Corp"
    assert body["policy"]["max_duration"] == 8
    assert body["policy"]["requests_per_minute"] is None, "null removes a limit"
    assert body["policy"]["max_concurrent"] == 50, "untouched fields stay"
    assert body["metadata"] == {"team": "video", "cost_center": "42"}


@pytest.mark.parametrize("patch", [{"id": "other"}, {"policy": {"max_duration": 99}}, {"uid": "x"}, {"name": 5}])
async def test_invalid_patches_get_422_and_change_nothing(gateway: Gateway, patch: dict[str, Any]) -> None:
    await _create(gateway)
    response = await gateway.client.patch("/admin/tenants/acme", json=patch, headers=gateway.admin)
    assert response.status_code == 422
    shown = (await gateway.client.get("/admin/tenants/acme", headers=gateway.admin)).json()
    assert _contract_view(shown) == CONTRACT_BODY


async def test_unknown_tenants_are_404_everywhere(gateway: Gateway) -> None:
    for method, path in [
        ("GET", "/admin/tenants/nobody"),
        ("PATCH", "/admin/tenants/nobody"),
        ("DELETE", "/admin/tenants/nobody"),
        ("GET", "/admin/tenants/nobody/keys"),
        ("POST", "/admin/tenants/nobody/keys"),
        ("DELETE", "/admin/tenants/nobody/keys/sgw_x"),
    ]:
        response = await gateway.client.request(
            method, path, headers=gateway.admin, json={} if method == "PATCH" else None
        )
        assert response.status_code == 404, (method, path)


async def test_key_metadata_never_shows_the_secret(gateway: Gateway) -> None:
    await _create(gateway)
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    issued = await _key(gateway, name="ci", expires_at=expires)
    assert issued["key"].startswith(issued["key_id"] + ":")
    assert issued["name"] == "ci"
    assert issued["state"] == "active"
    assert issued["expires_at"].startswith(expires[:16])
    await _call(gateway, issued["key"])
    listed = await gateway.client.get("/admin/tenants/acme/keys", headers=gateway.admin)
    (key,) = listed.json()["keys"]
    assert set(key) == {
        "key_id",
        "tenant_id",
        "name",
        "state",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "rotated_to",
    }
    assert key["last_used_at"] is not None
    secret = issued["key"].split(":")[1]
    assert secret not in listed.text
    assert "secret_hash" not in listed.text


async def test_an_expired_key_stops_working(gateway: Gateway) -> None:
    await _create(gateway)
    expires = datetime.fromtimestamp(gateway.clock() + 60, UTC).isoformat()
    key = (await _key(gateway, expires_at=expires))["key"]
    assert (await _call(gateway, key)).status_code == 200
    gateway.clock.advance(61)
    response = await _call(gateway, key)
    assert response.status_code == 401
    assert response.json()["detail"] == "API key is expired"


async def test_a_revoked_key_is_refused_at_once(gateway: Gateway) -> None:
    await _create(gateway)
    issued = await _key(gateway)
    assert (await _call(gateway, issued["key"])).status_code == 200
    revoked = await gateway.client.delete(f"/admin/tenants/acme/keys/{issued['key_id']}", headers=gateway.admin)
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"
    assert (await _call(gateway, issued["key"])).status_code == 401


async def test_rotation_keeps_the_old_key_for_the_grace_period_only(gateway: Gateway) -> None:
    await _create(gateway)
    old = await _key(gateway, name="prod")
    rotated = await gateway.client.post(
        f"/admin/tenants/acme/keys/{old['key_id']}/rotate", json={"grace_seconds": 3600}, headers=gateway.admin
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert new["name"] == "prod"
    assert new["previous"]["key_id"] == old["key_id"]
    assert new["previous"]["rotated_to"] == new["key_id"]
    assert (await _call(gateway, old["key"])).status_code == 200, "the grace period has not run out"
    assert (await _call(gateway, new["key"])).status_code == 200
    gateway.clock.advance(3601)
    assert (await _call(gateway, old["key"])).status_code == 401
    assert (await _call(gateway, new["key"])).status_code == 200
    again = await gateway.client.post(
        f"/admin/tenants/acme/keys/{old['key_id']}/rotate", json={"grace_seconds": 60}, headers=gateway.admin
    )
    assert again.status_code == 409


async def test_rotation_with_no_grace_ends_the_old_key_now(gateway: Gateway) -> None:
    await _create(gateway)
    old = await _key(gateway)
    await gateway.client.post(
        f"/admin/tenants/acme/keys/{old['key_id']}/rotate", json={"grace_seconds": 0}, headers=gateway.admin
    )
    assert (await _call(gateway, old["key"])).status_code == 401


async def test_a_disabled_tenant_is_refused_at_once_and_can_come_back(gateway: Gateway) -> None:
    await _create(gateway)
    key = (await _key(gateway))["key"]
    assert (await _call(gateway, key)).status_code == 200
    await gateway.client.patch("/admin/tenants/acme", json={"disabled": True}, headers=gateway.admin)
    refused = await gateway.client.post(
        f"/queue/{I2V}",
        json={"prompt": "x", "image_url": "https://e.com/a.png"},
        headers=key_auth(key),
    )
    assert refused.status_code == 403
    assert refused.json()["error_type"] == "tenant_disabled"
    assert gateway.sim.stats()["calls"]["submit"] == 0
    await gateway.client.patch("/admin/tenants/acme", json={"disabled": False}, headers=gateway.admin)
    assert (await _call(gateway, key)).status_code == 200


async def test_deleting_a_tenant_kills_its_keys_but_keeps_its_history(gateway: Gateway) -> None:
    await _create(gateway, {"id": "acme", "name": "Acme"})
    key = (await _key(gateway))["key"]
    submitted = (await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=key_auth(key))).json()
    deleted = await gateway.client.delete("/admin/tenants/acme", headers=gateway.admin)
    assert deleted.status_code == 200
    assert deleted.json()["deleted_keys"] == [key.split(":")[0]]
    assert (await _call(gateway, key)).status_code == 401
    history = (await gateway.client.get("/admin/tenants/acme/requests", headers=gateway.admin)).json()
    assert [r["request_id"] for r in history["requests"]] == [submitted["request_id"]]
    record = await gateway.client.get(f"/admin/requests/{submitted['request_id']}", headers=gateway.admin)
    assert record.status_code == 200
    assert record.json()["input"]["prompt"] == "x"

    # A new tenant under the same id never sees the old tenant's requests.
    await _create(gateway, {"id": "acme", "name": "Acme again"})
    new_key = (await _key(gateway))["key"]
    old_status = await gateway.client.get(local(submitted["status_url"]), headers=key_auth(new_key))
    assert old_status.status_code == 404


async def test_history_pages_newest_first(gateway: Gateway) -> None:
    await _create(gateway, {"id": "acme", "name": "Acme"})
    key = (await _key(gateway))["key"]
    ids = []
    for _ in range(5):
        gateway.clock.advance(0.01)
        response = await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=key_auth(key))
        ids.append(response.json()["request_id"])
    first = (
        await gateway.client.get("/admin/tenants/acme/requests", params={"limit": 3}, headers=gateway.admin)
    ).json()
    assert [r["request_id"] for r in first["requests"]] == ids[::-1][:3]
    rest = (
        await gateway.client.get(
            "/admin/tenants/acme/requests", params={"limit": 3, "before": first["next"]}, headers=gateway.admin
        )
    ).json()
    assert [r["request_id"] for r in rest["requests"]] == ids[::-1][3:]


async def test_every_admin_action_is_audited_without_secrets(gateway: Gateway) -> None:
    await _create(gateway)
    issued = await _key(gateway, name="ci")
    await gateway.client.post(
        f"/admin/tenants/acme/keys/{issued['key_id']}/rotate",
        json={"grace_seconds": 5},
        headers={**gateway.admin, "X-Gateway-Actor": "alice@ops"},
    )
    await gateway.client.patch("/admin/tenants/acme", json={"name": "B"}, headers=gateway.admin)
    await gateway.client.delete(f"/admin/tenants/acme/keys/{issued['key_id']}", headers=gateway.admin)
    await gateway.client.delete("/admin/tenants/acme", headers=gateway.admin)
    page = await gateway.client.get("/admin/audit", headers=gateway.admin)
    entries = page.json()["entries"]
    assert [e["action"] for e in entries] == [
        "tenant.delete",
        "key.revoke",
        "tenant.update",
        "key.rotate",
        "key.create",
        "tenant.create",
    ]
    rotate = entries[3]
    assert rotate["actor"]["operator"] == "alice@ops"
    assert rotate["actor"]["token_fingerprint"]
    assert rotate["at"].endswith("Z")
    assert issued["key"].split(":")[1] not in page.text
    assert ADMIN_TOKEN not in page.text
    older = await gateway.client.get("/admin/audit", params={"limit": 2}, headers=gateway.admin)
    cursor = older.json()["next"]
    following = await gateway.client.get("/admin/audit", params={"limit": 2, "before": cursor}, headers=gateway.admin)
    assert [e["action"] for e in following.json()["entries"]] == ["tenant.update", "key.rotate"]


async def test_me_shows_the_tenant_its_own_policy_and_nothing_else(gateway: Gateway) -> None:
    await _create(gateway)
    await _create(gateway, {"id": "globex", "name": "Globex", "metadata": {"secret_project": "x"}})
    key = (await _key(gateway))["key"]
    response = await _call(gateway, key)
    body = response.json()
    assert body["id"] == "acme"
    assert body["key_id"] == key.split(":")[0]
    assert {k: body["policy"][k] for k in CONTRACT_BODY["policy"]} == CONTRACT_BODY["policy"]
    assert body["usage"] == {"requests_last_minute": 0, "in_flight": 0}
    assert "globex" not in response.text
    assert "secret_project" not in response.text


@pytest.mark.parametrize(
    ("body", "loc", "error_type"),
    [
        ({"expires_at": "2001-01-01T00:00:00Z"}, ["body", "expires_at"], "value_error"),
        ({"name": "x", "colour": "red"}, ["body", "colour"], "value_error"),
    ],
)
async def test_key_bodies_are_validated(
    gateway: Gateway, body: dict[str, Any], loc: list[str], error_type: str
) -> None:
    await _create(gateway)
    response = await gateway.client.post("/admin/tenants/acme/keys", json=body, headers=gateway.admin)
    assert response.status_code == 422
    assert [(d["loc"], d["type"]) for d in response.json()["detail"]] == [(loc, error_type)]
    assert (await gateway.client.get("/admin/tenants/acme/keys", headers=gateway.admin)).json()["keys"] == []


async def test_an_expiry_without_an_offset_is_utc(gateway: Gateway) -> None:
    await _create(gateway)
    naive = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None, microsecond=0)
    issued = await _key(gateway, expires_at=naive.isoformat())
    assert issued["expires_at"] == naive.isoformat() + ".000Z"


@pytest.mark.parametrize(("raw", "error_type"), [(b"", "missing"), (b"[1]", "model_attributes_type")])
async def test_rotate_without_a_proper_body_says_so(gateway: Gateway, raw: bytes, error_type: str) -> None:
    await _create(gateway)
    issued = await _key(gateway)
    response = await gateway.client.post(
        f"/admin/tenants/acme/keys/{issued['key_id']}/rotate",
        content=raw,
        headers={**gateway.admin, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]
    assert response.json()["detail"][0]["type"] == error_type


async def test_lists_carry_no_usage_only_show_does(gateway: Gateway) -> None:
    await _create(gateway)
    listed = (await gateway.client.get("/admin/tenants", headers=gateway.admin)).json()["tenants"]
    assert "usage" not in listed[0]
    assert "usage" in (await gateway.client.get("/admin/tenants/acme", headers=gateway.admin)).json()


async def test_failed_admin_tokens_are_rate_limited_per_source(gateway: Gateway) -> None:
    codes = [
        (await gateway.client.get("/admin/tenants", headers={"Authorization": f"Bearer wrong-{n}"})).status_code
        for n in range(gateway.settings.auth_failures_per_minute + 1)
    ]
    assert set(codes[:-1]) == {401}
    assert codes[-1] == 429
    still_ok = await gateway.client.get("/admin/tenants", headers=gateway.admin)
    assert still_ok.status_code == 200, "only failed attempts are limited"


async def test_the_recorded_operator_name_is_bounded(gateway: Gateway) -> None:
    await gateway.client.post(
        "/admin/tenants", json={"id": "a", "name": "A"}, headers={**gateway.admin, "X-Gateway-Actor": "x" * 5000}
    )
    entry = (await gateway.client.get("/admin/audit", headers=gateway.admin)).json()["entries"][0]
    assert len(entry["actor"]["operator"]) == 200
