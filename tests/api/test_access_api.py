"""Who may call what: tenant keys, the admin token, and tenants never seeing each other's requests."""

from __future__ import annotations

import hashlib
import json

import pytest

from service import keys
from tests.support.admin import ADMIN_TOKEN, key_auth
from tests.support.endpoints import T2V
from tests.support.gateway import Gateway, local, serve_in_process

ENDPOINT_PATHS = ["/status", "/status/stream", "", "/cancel"]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Key",
        "Key nonsense",
        "Basic dXNlcjpwYXNz",
        "Key sgw_aaaaaaaaaaaaaaaaaaaa:" + "x" * 43,
        "Bearer sgw_aaaaaaaaaaaaaaaaaaaa:" + "y" * 43,
    ],
)
async def test_missing_malformed_or_unknown_keys_get_401_in_fal_shape(gateway: Gateway, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = await gateway.client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"detail", "error_type"}
    assert body["error_type"] == "unauthorized"
    assert response.headers["x-fal-error-type"] == "unauthorized"
    assert response.headers["x-fal-request-id"]
    assert gateway.sim.stats()["calls"]["submit"] == 0


async def test_a_key_with_the_right_id_but_wrong_secret_is_refused(gateway: Gateway) -> None:
    key = await gateway.key_for("acme")
    key_id = key.split(":")[0]
    response = await gateway.client.post(
        f"/queue/{T2V}", json={"prompt": "x"}, headers={"Authorization": f"Key {key_id}:{'z' * 43}"}
    )
    assert response.status_code == 401


async def test_bearer_scheme_is_accepted_like_key(gateway: Gateway) -> None:
    key = await gateway.key_for("acme")
    response = await gateway.client.post(
        f"/queue/{T2V}", json={"prompt": "x"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200


async def test_only_a_hash_of_the_secret_is_stored(gateway: Gateway) -> None:
    key = await gateway.key_for("acme")
    key_id, secret = key.split(":")
    assert key_id.startswith("sgw_")
    stored = await gateway.redis.hgetall(keys.api_key(key_id))
    assert stored
    assert all(secret not in value for value in stored.values())
    assert json.loads(stored["secret_hash"]) == hashlib.sha256(secret.encode()).hexdigest()
    everything = [await gateway.redis.dump(k) for k in await gateway.redis.keys("*")]
    assert all(secret.encode() not in (blob or b"") for blob in everything), "the secret is nowhere in Redis"


async def test_unknown_endpoint_is_404_and_reaches_nothing(gateway: Gateway) -> None:
    response = await gateway.client.post("/queue/fal-ai/flux/dev", json={"prompt": "x"}, headers=await gateway.auth())
    assert response.status_code == 404
    assert response.json()["error_type"] == "application_not_found"
    run = await gateway.client.post(
        "/run/fal-ai/bytedance/seedance/v1/pro/image-to-video", json={"prompt": "x"}, headers=await gateway.auth()
    )
    assert run.status_code == 404
    assert gateway.sim.stats()["calls"]["submit"] == 0


async def test_unknown_routes_get_a_fal_shaped_404(gateway: Gateway) -> None:
    response = await gateway.client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error_type"] == "not_found"
    assert response.headers["x-fal-request-id"]


@pytest.mark.parametrize("suffix", ENDPOINT_PATHS)
async def test_another_tenants_request_is_indistinguishable_from_an_unknown_one(gateway: Gateway, suffix: str) -> None:
    gateway.sim.configure(processing_seconds=30)  # still running when the owner looks again
    owner_body = (await gateway.submit(tenant="acme")).json()
    other = await gateway.auth("globex")
    base = local(owner_body["response_url"])
    method = "PUT" if suffix == "/cancel" else "GET"

    foreign = await gateway.client.request(method, base + suffix, headers=other)
    unknown = await gateway.client.request(
        method, base.replace(owner_body["request_id"], "00000000-0000-4000-8000-000000000000") + suffix, headers=other
    )

    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json() == unknown.json() == {"detail": "Request not found", "error_type": "request_not_found"}
    owner_view = await gateway.client.get(base + "/status", headers=await gateway.auth("acme"))
    assert owner_view.status_code == 202, "the foreign cancel attempt changed nothing: the job still runs"
    assert "error" not in owner_view.json()
    assert gateway.sim.stats()["calls"]["cancel"] == 0


async def test_status_under_the_wrong_owner_alias_is_404(gateway: Gateway) -> None:
    rid = (await gateway.submit()).json()["request_id"]
    response = await gateway.client.get(f"/queue/fal-ai/flux/requests/{rid}/status", headers=await gateway.auth())
    assert response.status_code == 404


async def test_admin_api_requires_the_admin_token_not_a_tenant_key(gateway: Gateway) -> None:
    key = await gateway.key_for("acme")
    for headers in (
        {},
        key_auth(key),
        {"Authorization": f"Bearer {key}"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
    ):
        response = await gateway.client.post("/admin/tenants", json={"id": "evil", "name": "Evil"}, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error_type"] == "unauthorized"
    assert await gateway.redis.get(keys.tenant("evil")) is None


async def test_admin_creates_tenants_and_keys(gateway: Gateway) -> None:
    created = await gateway.client.post("/admin/tenants", json={"id": "acme", "name": "Acme"}, headers=gateway.admin)
    assert created.status_code == 201
    assert created.json()["id"] == "acme"
    again = await gateway.client.post("/admin/tenants", json={"id": "acme", "name": "Acme"}, headers=gateway.admin)
    assert again.status_code == 409
    issued = await gateway.client.post("/admin/tenants/acme/keys", headers=gateway.admin)
    assert issued.status_code == 201
    body = issued.json()
    assert body["key"].startswith(body["key_id"] + ":")
    missing = await gateway.client.post("/admin/tenants/nobody/keys", headers=gateway.admin)
    assert missing.status_code == 404


@pytest.mark.parametrize("tenant_id", ["Acme", "a b", "a}b{c", "-lead", "x" * 64, "", "acme:*"])
async def test_tenant_ids_that_could_inject_into_key_names_are_refused(gateway: Gateway, tenant_id: str) -> None:
    response = await gateway.client.post("/admin/tenants", json={"id": tenant_id, "name": "X"}, headers=gateway.admin)
    assert response.status_code == 422
    assert await gateway.redis.keys("gw:v1:tenant*") == []


async def test_admin_api_is_disabled_without_a_token(gateway: Gateway, redis_client: object) -> None:

    from service.app import create_app  # noqa: PLC0415

    app = create_app(gateway.settings.model_copy(update={"admin_token": None}), redis=gateway.redis)
    async with serve_in_process(app) as client:
        response = await client.post(
            "/admin/tenants", json={"id": "a", "name": "A"}, headers={"Authorization": "Bearer "}
        )
    assert response.status_code == 401
    assert "disabled" in response.json()["detail"]
