"""The gateway with its simulator embedded (what `seedance-gateway dev` runs): jobs complete, output videos are
served through the gateway's own /_simulator mount, and the settlement probe reads them in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from service.app import create_app
from tests.support.admin import ADMIN, key_auth, tenant_key
from tests.support.endpoints import I2V
from tests.support.gateway import fast_settings, serve_in_process

PUBLIC = "https://gateway.example:8443"


@pytest.fixture
async def embedded(redis_client: Redis, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = fast_settings(redis_url, simulator=True, fal_key=None, public_url=PUBLIC)
    async with serve_in_process(create_app(settings, redis=redis_client)) as client:
        client.headers.update(key_auth(await tenant_key(client, "demo")))
        yield client


async def test_the_embedded_simulator_runs_jobs_serves_videos_and_is_probed(embedded: httpx.AsyncClient) -> None:
    body = {"prompt": "a cat waves", "image_url": "https://example.com/cat.png", "aspect_ratio": "auto", "seed": 3}
    run = await embedded.post(f"/run/{I2V}", json=body, timeout=30)
    assert run.status_code == 200, run.text
    video = run.json()["video"]
    assert video["url"] == f"{PUBLIC}/_simulator/media/720p-1280x720.mp4"

    served = await embedded.get(video["url"].removeprefix(PUBLIC))
    assert served.status_code == 200
    assert served.headers["content-type"] == "video/mp4"
    assert served.content[4:8] == b"ftyp"
    assert len(served.content) == video["file_size"]

    (charge,) = (await embedded.get("/admin/tenants/demo/charges", headers=ADMIN)).json()["charges"]
    assert charge["size_source"] == "probe", "the probe read the video from the mount in-process"
    assert (charge["width"], charge["height"]) == (1280, 720)


async def test_uploads_go_to_the_embedded_simulator_and_their_url_serves_as_image_url(
    redis_client: Redis, redis_url: str
) -> None:
    settings = fast_settings(redis_url, simulator=True, fal_key=None, public_url=PUBLIC, cache_content_hashing=True)
    app = create_app(settings, redis=redis_client)
    async with serve_in_process(app) as client:
        client.headers.update(key_auth(await tenant_key(client, "demo")))
        token = (await client.post("/rest/storage/auth/token", json={})).json()
        assert token["base_url"] == f"{PUBLIC}/cdn"
        image = b"\x89PNG\r\n\x1a\n" + b"frame" * 100
        upload = await client.post(
            "/cdn/files/upload",
            content=image,
            headers={"authorization": f"Bearer {token['token']}", "content-type": "image/png"},
        )
        assert upload.status_code == 200, upload.text
        url = upload.json()["access_url"]
        assert url.startswith(f"{PUBLIC}/_simulator/files/")
        served = await client.get(url.removeprefix(PUBLIC))
        assert served.content == image
        assert served.headers["content-type"] == "image/png"
        run = await client.post(f"/run/{I2V}", json={"prompt": "a cat waves", "image_url": url, "seed": 5}, timeout=30)
        assert run.status_code == 200, run.text
    cached = [key async for key in redis_client.scan_iter("gw:v1:cache:*")]
    assert cached, "the job completed and was cached"
