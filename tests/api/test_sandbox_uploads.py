"""A sandbox tenant's uploads (service/storage/ over service/simulator/files.py): both upload routes are served by
the sandbox, the files kept in Redis and served at /_sandbox/files/..., usable as a sandbox job's image_url, while
the real upstream (the test simulator) hears of nothing; upload URLs and tokens never cross between the worlds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from service.app import create_app
from service.simulator.app import SimulatorState
from service.simulator.storage import storage_of
from tests.support.admin import ADMIN, create_tenant, key_auth
from tests.support.endpoints import I2V
from tests.support.gateway import Gateway, fast_settings, local, running_gateway, serve_in_process

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
INITIATE = "/rest/storage/upload/initiate"
TOKEN = "/rest/storage/auth/token"
CDN = "/cdn/files/upload"
SANDBOX_BASE = "http://127.0.0.1:8080"
SANDBOX_FILES = f"{SANDBOX_BASE}/_sandbox/files/"


@pytest.fixture
async def gateway(redis_client: Redis, sim: SimulatorState, redis_url: str) -> AsyncIterator[Gateway]:
    settings = fast_settings(
        redis_url, sandbox_queue_seconds=0.05, sandbox_processing_seconds=0.2, cache_content_hashing=True
    )
    async with running_gateway(redis_client, sim, settings) as running:
        await create_tenant(running.client, "sb", sandbox=True)
        yield running


def _fal_heard_nothing(sim: SimulatorState) -> None:
    storage = storage_of(sim)
    assert (storage.files, storage.tokens, storage.received_auth) == ({}, set(), [])
    assert not any(sim.stats()["calls"].values())


async def _initiate(gateway: Gateway, tenant: str) -> dict[str, Any]:
    body = {"content_type": "image/png", "file_name": "frame.png"}
    response = await gateway.client.post(INITIATE, json=body, headers=await gateway.auth(tenant))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _cdn_upload(gateway: Gateway, tenant: str, name: str = "a.png") -> str:
    token = await gateway.client.post(TOKEN, json={}, headers=await gateway.auth(tenant))
    assert token.status_code == 200, token.text
    headers = {"authorization": f"Bearer {token.json()['token']}", "content-type": "image/png", "x-fal-file-name": name}
    uploaded = await gateway.client.post(CDN, content=PNG, headers=headers)
    assert uploaded.status_code == 200, uploaded.text
    url: str = uploaded.json()["access_url"]
    return url


async def _served(gateway: Gateway, url: str) -> tuple[str, bytes]:
    served = await gateway.client.get(url.removeprefix(SANDBOX_BASE))
    assert served.status_code == 200, served.text
    return served.headers["content-type"], served.content


async def test_both_upload_routes_are_served_by_the_sandbox(gateway: Gateway, sim: SimulatorState) -> None:
    answer = await _initiate(gateway, "sb")
    assert answer["file_url"].startswith(SANDBOX_FILES)
    assert answer["file_url"].endswith("/frame.png")
    put = await gateway.client.put(local(answer["upload_url"]), content=PNG, headers={"content-type": "image/png"})
    assert put.status_code == 200, put.text
    access_url = await _cdn_upload(gateway, "sb")
    assert access_url.startswith(SANDBOX_FILES)
    assert access_url.endswith("/a.png")
    for url in (answer["file_url"], access_url):
        assert await _served(gateway, url) == ("image/png", PNG)
    missing = await gateway.client.get("/_sandbox/files/" + "0" * 24 + "/a.png")
    assert missing.status_code == 404
    page = (await gateway.client.get("/admin/audit", headers=ADMIN)).json()["entries"]
    routes = [entry["details"]["route"] for entry in page if entry["action"] == "storage.upload"]
    assert sorted(routes) == ["cdn", "upload_url"]
    _fal_heard_nothing(sim)
    stored = await gateway.redis.keys("gw:v1:sandboxfile:*")
    assert len(stored) == 2
    assert 0 < await gateway.redis.ttl(stored[0]) <= 24 * 3600


async def test_a_sandbox_upload_serves_as_image_url_and_is_hashed(gateway: Gateway, sim: SimulatorState) -> None:
    url = await _cdn_upload(gateway, "sb")
    body = {"prompt": "a cat waves", "image_url": url, "aspect_ratio": "auto", "seed": 3}
    submitted = await gateway.submit(I2V, body, tenant="sb")
    assert submitted.status_code == 200, submitted.text
    final = await gateway.wait_status(local(submitted.json()["status_url"]), tenant="sb")
    assert final["status"] == "COMPLETED"
    assert "error" not in final
    # The same bytes under another URL: a cache hit only if the gateway read them (from Redis) to hash them.
    again = await gateway.client.post(
        f"/run/{I2V}", json={**body, "image_url": url + "?copy=1"}, headers=await gateway.auth("sb")
    )
    first = await gateway.client.post(f"/run/{I2V}", json=body, headers=await gateway.auth("sb"))
    assert again.status_code == first.status_code == 200, again.text
    assert again.headers["x-gateway-cache"] == first.headers["x-gateway-cache"] == "hit"
    usage = (await gateway.client.get("/admin/tenants/sb/usage", headers=ADMIN)).json()
    assert (usage["spent_micros"], usage["reserved_micros"]) == (0, 0)
    _fal_heard_nothing(sim)


async def test_upload_urls_never_cross_between_the_worlds(gateway: Gateway, sim: SimulatorState) -> None:
    sandbox_grant, real_grant = await _initiate(gateway, "sb"), await _initiate(gateway, "acme")
    cross = [
        await gateway.client.put(local(sandbox_grant["upload_url"]), content=PNG, headers=await gateway.auth("acme")),
        await gateway.client.put(local(real_grant["upload_url"]), content=PNG, headers=await gateway.auth("sb")),
    ]
    assert [response.status_code for response in cross] == [403, 403]
    # Both grants stayed; each, used by its own tenant, lands in its own world.
    for grant, tenant in ((sandbox_grant, "sb"), (real_grant, "acme")):
        put = await gateway.client.put(local(grant["upload_url"]), content=PNG, headers=await gateway.auth(tenant))
        assert put.status_code == 200, put.text
    assert await _served(gateway, sandbox_grant["file_url"]) == ("image/png", PNG)
    assert [stored.data for stored in storage_of(sim).files.values()] == [PNG]


async def test_a_token_uploads_to_its_own_world(gateway: Gateway, sim: SimulatorState) -> None:
    sandbox_url, real_url = await _cdn_upload(gateway, "sb"), await _cdn_upload(gateway, "acme")
    assert sandbox_url.startswith(SANDBOX_FILES)
    assert not real_url.startswith(SANDBOX_FILES)
    assert [stored.data for stored in storage_of(sim).files.values()] == [PNG]  # the real tenant's only
    assert len(await gateway.redis.keys("gw:v1:sandboxfile:*")) == 1


async def test_redis_down_answers_503(gateway: Gateway, sim: SimulatorState) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", decode_responses=True, socket_connect_timeout=0.2)
    app = create_app(gateway.settings.model_copy(update={"tracker_enabled": False}), redis=dead)
    async with serve_in_process(app) as client:
        responses = [
            await client.post(INITIATE, json={}, headers=key_auth("gk_x:y")),
            await client.post(CDN, content=PNG, headers={"authorization": "Bearer whatever"}),
            await client.put("/rest/storage/uploads/some-id", content=PNG),
            await client.get("/_sandbox/files/" + "0" * 24 + "/a.png"),
        ]
    await dead.aclose()
    assert [response.status_code for response in responses] == [503, 503, 503, 503]
    assert {response.json()["error_type"] for response in responses} == {"state_store_unavailable"}
    _fal_heard_nothing(sim)


async def test_a_token_stops_serving_once_its_tenant_changes_world(gateway: Gateway, sim: SimulatorState) -> None:
    token = await gateway.client.post(TOKEN, json={}, headers=await gateway.auth("sb"))
    switched = await gateway.client.patch("/admin/tenants/sb", json={"sandbox": False}, headers=ADMIN)
    assert switched.status_code == 200, switched.text
    headers = {"authorization": f"Bearer {token.json()['token']}", "content-type": "image/png"}
    refused = await gateway.client.post(CDN, content=PNG, headers=headers)
    assert refused.status_code == 403, refused.text
    _fal_heard_nothing(sim)
