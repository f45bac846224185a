"""Uploads through the gateway (service/storage/): fal's storage calls under /rest and /cdn, forwarded to the
simulator's storage API with the gateway's own key, per tenant authenticated, rate-limited, capped and audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from service.app import create_app
from service.simulator.app import SimulatorState
from service.simulator.storage import storage_of
from tests.support.admin import FAL_KEY, key_auth
from tests.support.endpoints import I2V
from tests.support.gateway import (
    BASE_URL,
    Gateway,
    fast_settings,
    local,
    running_gateway,
    serve_in_process,
    simulator_transport,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
INITIATE = "/rest/storage/upload/initiate"
TOKEN = "/rest/storage/auth/token"
CDN = "/cdn/files/upload"


@pytest.fixture
async def small(redis_client: Redis, sim: SimulatorState, redis_url: str) -> AsyncIterator[Gateway]:
    """A gateway with a 4 KiB upload cap and two uploads per tenant and minute."""
    settings = fast_settings(redis_url, upload_max_bytes=4096, upload_requests_per_minute=2)
    async with running_gateway(redis_client, sim, settings) as gateway:
        yield gateway


async def _initiate(gateway: Gateway, tenant: str = "acme", storage_type: str = "fal-cdn-v3") -> dict[str, Any]:
    response = await gateway.client.post(
        INITIATE,
        params={"storage_type": storage_type},
        json={"content_type": "image/png", "file_name": "frame.png"},
        headers=await gateway.auth(tenant),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _uploads_audited(gateway: Gateway) -> list[dict[str, Any]]:
    page = await gateway.client.get("/admin/audit", headers=gateway.admin)
    return [entry for entry in page.json()["entries"] if entry["action"] == "storage.upload"]


async def test_initiate_then_put_stores_the_file_at_fal_with_the_gateways_key_only(gateway: Gateway) -> None:
    answer = await _initiate(gateway)
    assert answer["upload_url"].startswith(f"{BASE_URL}/rest/storage/uploads/")
    put = await gateway.client.put(local(answer["upload_url"]), content=PNG, headers={"content-type": "image/png"})
    assert put.status_code == 200, put.text
    storage = storage_of(gateway.sim)
    file_id = answer["file_url"].split("/files/")[1].split("/")[0]
    assert storage.files[file_id].data == PNG
    assert storage.files[file_id].content_type == "image/png"
    assert storage.received_auth == [None]  # the upload URL needs no key, and no tenant key is ever forwarded
    [entry] = await _uploads_audited(gateway)
    assert entry["target"] == "acme"
    assert entry["details"] == {
        "tenant_id": "acme",
        "bytes": len(PNG),
        "content_type": "image/png",
        "route": "upload_url",
        "file_url": answer["file_url"],
    }
    assert gateway.keys["acme"].split(":")[1] not in str(entry)


async def test_the_gcs_path_puts_with_the_tenants_key_which_stays_at_the_gateway(gateway: Gateway) -> None:
    answer = await _initiate(gateway, storage_type="gcs")
    put = await gateway.client.put(
        local(answer["upload_url"]), content=PNG, headers={"content-type": "image/png", **await gateway.auth()}
    )
    assert put.status_code == 200, put.text
    assert storage_of(gateway.sim).received_auth == [None]


async def test_an_upload_url_works_once(gateway: Gateway) -> None:
    url = local((await _initiate(gateway))["upload_url"])
    assert (await gateway.client.put(url, content=PNG)).status_code == 200
    again = await gateway.client.put(url, content=PNG)
    assert again.status_code == 404
    assert again.json()["error_type"] == "not_found"


async def test_an_upload_url_expires(gateway: Gateway) -> None:
    url = local((await _initiate(gateway))["upload_url"])
    gateway.clock.advance(gateway.settings.upload_grant_seconds + 1)
    assert (await gateway.client.put(url, content=PNG)).status_code == 404
    assert not any(stored.data for stored in storage_of(gateway.sim).files.values())


async def test_another_tenant_cannot_put_to_an_upload_url(gateway: Gateway) -> None:
    url = local((await _initiate(gateway, "acme"))["upload_url"])
    refused = await gateway.client.put(url, content=PNG, headers=await gateway.auth("globex"))
    assert refused.status_code == 403
    assert not any(stored.data for stored in storage_of(gateway.sim).files.values())
    assert (await gateway.client.put(url, content=PNG, headers=await gateway.auth("acme"))).status_code == 200


async def test_an_unknown_upload_url_is_404(gateway: Gateway) -> None:
    response = await gateway.client.put("/rest/storage/uploads/not-a-grant", content=PNG)
    assert response.status_code == 404
    assert response.headers["x-fal-error-type"] == "not_found"


@pytest.mark.parametrize("path", [INITIATE, TOKEN])
async def test_initiate_and_token_need_a_valid_tenant_key(gateway: Gateway, path: str) -> None:
    missing = await gateway.client.post(path, json={})
    wrong = await gateway.client.post(path, json={}, headers=key_auth("gk_nope:wrong"))
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error_type"] == "unauthorized"
    assert storage_of(gateway.sim).files == {}
    assert storage_of(gateway.sim).tokens == set()


async def test_a_put_with_a_wrong_key_is_401(gateway: Gateway) -> None:
    url = local((await _initiate(gateway))["upload_url"])
    response = await gateway.client.put(url, content=PNG, headers=key_auth("gk_nope:wrong"))
    assert response.status_code == 401


async def test_an_unknown_storage_type_is_400(gateway: Gateway) -> None:
    response = await gateway.client.post(INITIATE, params={"storage_type": "s3"}, json={}, headers=await gateway.auth())
    assert response.status_code == 400


async def test_cdn_token_then_upload_returns_the_access_url(gateway: Gateway) -> None:
    token = await gateway.client.post(
        TOKEN, params={"storage_type": "fal-cdn-v3"}, json={}, headers=await gateway.auth()
    )
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"] == "Bearer"
    assert body["base_url"] == f"{BASE_URL}/cdn"
    assert body["expires_at"]
    headers = {"authorization": f"Bearer {body['token']}", "content-type": "image/png", "x-fal-file-name": "a.png"}
    first = await gateway.client.post(CDN, content=PNG, headers=headers)
    second = await gateway.client.post(CDN, content=PNG, headers=headers)  # a token serves until it expires
    assert first.status_code == second.status_code == 200, first.text
    url = first.json()["access_url"]
    assert url.endswith("/a.png")
    storage = storage_of(gateway.sim)
    assert storage.files[url.split("/files/")[1].split("/")[0]].data == PNG
    assert body["token"] not in str(storage.received_auth)  # fal sees its own token for the gateway, never ours
    assert all(auth and auth.startswith("Bearer ") for auth in storage.received_auth)
    entries = await _uploads_audited(gateway)
    assert [entry["details"]["route"] for entry in entries] == ["cdn", "cdn"]
    assert entries[0]["details"]["bytes"] == len(PNG)
    assert body["token"] not in str(entries)
    assert not await gateway.redis.keys(f"*{body['token']}*")  # only its hash is stored


async def test_the_gateway_obtains_one_fal_cdn_token_for_many_uploads(gateway: Gateway) -> None:
    for _ in range(3):
        token = (await gateway.client.post(TOKEN, json={}, headers=await gateway.auth())).json()["token"]
        response = await gateway.client.post(CDN, content=PNG, headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 200
    assert len(storage_of(gateway.sim).tokens) == 1


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", f"Key {FAL_KEY}"])
async def test_a_cdn_upload_without_a_gateway_token_is_401(gateway: Gateway, authorization: str | None) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    response = await gateway.client.post(CDN, content=PNG, headers=headers)
    assert response.status_code == 401
    assert storage_of(gateway.sim).files == {}


async def test_a_cdn_token_expires(gateway: Gateway) -> None:
    token = (await gateway.client.post(TOKEN, json={}, headers=await gateway.auth())).json()["token"]
    gateway.clock.advance(gateway.settings.upload_grant_seconds + 1)
    response = await gateway.client.post(CDN, content=PNG, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert storage_of(gateway.sim).files == {}


async def _streamed(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1024):
        yield data[start : start + 1024]


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_a_put_over_the_cap_is_413_and_nothing_is_stored(small: Gateway, streamed: bool) -> None:
    url = local((await _initiate(small))["upload_url"])
    big = PNG * 3  # over 4 KiB
    content = _streamed(big) if streamed else big
    response = await small.client.put(url, content=content, headers={"content-type": "image/png"})
    assert response.status_code == 413
    assert response.json()["error_type"] == "payload_too_large"
    assert not any(stored.data for stored in storage_of(small.sim).files.values())
    assert await _uploads_audited(small) == []


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_a_cdn_upload_over_the_cap_is_413_and_nothing_is_stored(small: Gateway, streamed: bool) -> None:
    token = (await small.client.post(TOKEN, json={}, headers=await small.auth())).json()["token"]
    big = PNG * 3
    response = await small.client.post(
        CDN, content=_streamed(big) if streamed else big, headers={"authorization": f"Bearer {token}"}
    )
    assert response.status_code == 413
    assert not any(stored.data for stored in storage_of(small.sim).files.values())


async def test_uploads_are_rate_limited_per_tenant(small: Gateway) -> None:
    await _initiate(small)
    await _initiate(small)
    refused = await small.client.post(INITIATE, json={}, headers=await small.auth())
    assert refused.status_code == 429
    assert refused.json()["error_type"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    token = await small.client.post(TOKEN, json={}, headers=await small.auth())
    assert token.status_code == 429
    assert len(storage_of(small.sim).files) == 2
    await _initiate(small, "globex")  # another tenant's uploads count on their own


async def test_multipart_routes_answer_413_in_fals_shape(gateway: Gateway) -> None:
    auth = await gateway.auth()
    token = (await gateway.client.post(TOKEN, json={}, headers=auth)).json()["token"]
    for response in (
        await gateway.client.post("/rest/storage/upload/initiate-multipart", json={}, headers=auth),
        await gateway.client.post("/cdn/files/upload/multipart", headers={"authorization": f"Bearer {token}"}),
    ):
        assert response.status_code == 413
        assert response.json()["error_type"] == "payload_too_large"


async def test_redis_down_answers_503(gateway: Gateway) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True, socket_connect_timeout=0.2)
    app = create_app(
        gateway.settings.model_copy(update={"tracker_enabled": False}),
        redis=dead,
        upstream_transport=simulator_transport(gateway.sim),
    )
    async with serve_in_process(app) as client:
        responses = [
            await client.post(INITIATE, json={}, headers=key_auth("gk_x:y")),
            await client.post(CDN, content=PNG, headers={"authorization": "Bearer whatever"}),
            await client.put("/rest/storage/uploads/some-id", content=PNG),
        ]
    await dead.aclose()
    assert [response.status_code for response in responses] == [503, 503, 503]
    assert {response.json()["error_type"] for response in responses} == {"state_store_unavailable"}
    assert storage_of(gateway.sim).files == {}


async def test_an_uploaded_file_url_serves_as_image_url(
    redis_client: Redis, sim: SimulatorState, redis_url: str
) -> None:
    settings = fast_settings(redis_url, cache_content_hashing=True)
    async with running_gateway(redis_client, sim, settings) as gateway:
        answer = await _initiate(gateway)
        await gateway.client.put(local(answer["upload_url"]), content=PNG, headers={"content-type": "image/png"})
        submitted = await gateway.submit(I2V, {"prompt": "a cat waves", "image_url": answer["file_url"], "seed": 3})
        assert submitted.status_code == 200, submitted.text
        final = await gateway.wait_status(local(submitted.json()["status_url"]))
        assert final["status"] == "COMPLETED"
        assert "error" not in final
    assert storage_of(sim).downloads >= 1  # the gateway hashed the image behind the URL (a trusted origin)
