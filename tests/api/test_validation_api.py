"""Bad input gets fal's 422 body, costs nothing and never reaches upstream."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.endpoints import DEFAULTS, I2V, I2V_INPUT, T2V
from tests.support.gateway import Gateway

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (T2V, {}, "prompt", "missing"),
    (I2V, {"prompt": "x"}, "image_url", "missing"),
    (T2V, {"prompt": "x", "duration": "3"}, "duration", "enum"),
    (T2V, {"prompt": "x", "duration": 5}, "duration", "enum"),
    (T2V, {"prompt": "x", "resolution": "4k"}, "resolution", "enum"),
    (T2V, {"prompt": "x", "aspect_ratio": "2:1"}, "aspect_ratio", "enum"),
    (I2V, {**I2V_INPUT, "aspect_ratio": "5:4"}, "aspect_ratio", "enum"),
    (T2V, {"prompt": "x", "seed": "abc"}, "seed", "int_parsing"),
    (T2V, {"prompt": "x", "generate_audio": "maybe"}, "generate_audio", "bool_parsing"),
    (T2V, {"prompt": "x", "camera_fixed": []}, "camera_fixed", "bool_type"),
    (T2V, {"prompt": 12}, "prompt", "string_type"),
]


@pytest.mark.parametrize(("endpoint", "body", "field", "error_type"), CASES)
@pytest.mark.parametrize("mode", ["queue", "run"])
async def test_schema_violations_get_fastapi_422_and_no_upstream_call(
    gateway: Gateway, endpoint: str, body: dict[str, Any], field: str, error_type: str, mode: str
) -> None:
    response = await gateway.client.post(f"/{mode}/{endpoint}", json=body, headers=await gateway.auth())
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert {"loc": ["body", field], "type": error_type} in [{"loc": d["loc"], "type": d["type"]} for d in detail]
    assert all({"loc", "msg", "type"} <= set(d) for d in detail)
    assert response.headers["x-fal-request-id"]
    assert gateway.sim.stats()["calls"]["submit"] == 0
    assert await gateway.redis.keys("gw:v1:job:*") == [], "nothing is recorded for a rejected request"


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b'"prompt"', b"null"])
async def test_non_object_bodies_get_422(gateway: Gateway, raw: bytes) -> None:
    response = await gateway.client.post(
        f"/queue/{T2V}", content=raw, headers={**await gateway.auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"
    assert gateway.sim.stats()["calls"]["submit"] == 0


async def test_oversized_bodies_get_413_in_fal_shape(gateway: Gateway) -> None:
    huge = {"prompt": "x" * (gateway.settings.max_body_bytes + 10)}
    response = await gateway.client.post(f"/queue/{T2V}", json=huge, headers=await gateway.auth())
    assert response.status_code == 413
    assert response.json()["error_type"] == "payload_too_large"
    assert gateway.sim.stats()["calls"]["submit"] == 0


def _data_uri(size: int) -> str:
    return "data:image/png;base64," + "A" * size


async def test_image_to_video_takes_both_frames_as_large_data_uris(gateway: Gateway) -> None:
    frame = _data_uri(3 * 1024 * 1024)  # 6 MiB of frames: far above the 1 MiB of other requests
    body = {"prompt": "between two frames", "image_url": frame, "end_image_url": frame}
    response = await gateway.submit(I2V, body)
    assert response.status_code == 200, response.text
    (forwarded,) = [r["input"] for r in gateway.sim.stats()["requests"].values()]
    assert forwarded["image_url"] == forwarded["end_image_url"] == frame


async def test_an_image_to_video_body_beyond_its_own_limit_gets_413(gateway: Gateway) -> None:
    limit = gateway.settings.image_to_video_max_body_bytes
    body = {"prompt": "x", "image_url": _data_uri(limit // 2), "end_image_url": _data_uri(limit // 2)}
    response = await gateway.client.post(f"/queue/{I2V}", json=body, headers=await gateway.auth())
    assert response.status_code == 413
    assert response.json()["error_type"] == "payload_too_large"
    assert gateway.sim.stats()["calls"]["submit"] == 0


@pytest.mark.parametrize("route", ["/queue/{}", "/run/{}", "/v1/estimate/{}"])
async def test_text_to_video_keeps_the_smaller_limit_on_every_submit_route(gateway: Gateway, route: str) -> None:
    body = {"prompt": "x" * (gateway.settings.max_body_bytes + 10)}
    response = await gateway.client.post(route.format(T2V), json=body, headers=await gateway.auth())
    assert response.status_code == 413
    assert response.json()["error_type"] == "payload_too_large"
    assert gateway.sim.stats()["calls"]["submit"] == 0


async def test_other_routes_keep_the_smaller_limit(gateway: Gateway) -> None:
    body = {"id": "big", "name": "x", "metadata": {"blob": "x" * (gateway.settings.max_body_bytes + 10)}}
    response = await gateway.client.post("/admin/tenants", json=body, headers=gateway.admin)
    assert response.status_code == 413


async def test_defaults_are_filled_and_unknown_fields_dropped_before_forwarding(gateway: Gateway) -> None:
    response = await gateway.submit(T2V, {"prompt": "x", "duration": "6", "surprise": True})
    assert response.status_code == 200
    (forwarded,) = [r["input"] for r in gateway.sim.stats()["requests"].values()]
    assert forwarded == {"prompt": "x", **DEFAULTS, "duration": "6"}


async def test_a_prompt_with_a_lone_surrogate_is_forwarded_not_crashed_on(gateway: Gateway) -> None:
    response = await gateway.client.post(
        f"/queue/{T2V}",
        content=b'{"prompt": "a \\ud800 b"}',
        headers={**await gateway.auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 200
