"""Hostile request bodies get a 4xx in fal's shape, and nothing is recorded, reserved or sent upstream."""

from __future__ import annotations

from typing import Any

import pytest

from service.domain.schemas import MAX_JSON_DEPTH
from tests.support.endpoints import I2V, I2V_INPUT, T2V
from tests.support.gateway import Gateway

BUDGET = {"limit_micros": 10_000_000, "period": "month"}

TOO_DEEP = f"nested more than {MAX_JSON_DEPTH} levels deep"
# id, body, loc, type, and for json_invalid the reason its ctx gives
RAW_CASES: list[tuple[str, bytes, list[Any], str, str | None]] = [
    ("deep-arrays", b"[" * 20_000 + b"]" * 20_000, ["body"], "json_invalid", TOO_DEEP),
    ("deep-objects", b'{"a":' * 20_000 + b"1" + b"}" * 20_000, ["body"], "json_invalid", TOO_DEEP),
    ("deep-unclosed", b'{"prompt": "x", "a": ' + b"[{" * 10_000, ["body"], "json_invalid", TOO_DEEP),
    (
        "deep-in-unknown-field",
        b'{"prompt": "x", "a": ' + b"[" * 64 + b"]" * 64 + b"}",
        ["body"],
        "json_invalid",
        TOO_DEEP,
    ),
    ("invalid-utf8", b'{"prompt": "\xff\xfe"}', ["body", 0], "json_invalid", "invalid encoding"),
    (
        "huge-integer-literal",
        b'{"prompt": "x", "seed": ' + b"7" * 5000 + b"}",
        ["body", 0],
        "json_invalid",
        "number literal too long",
    ),
    ("nan-seed", b'{"prompt": "x", "seed": NaN}', ["body", "seed"], "finite_number", None),
    ("infinite-seed", b'{"prompt": "x", "seed": -Infinity}', ["body", "seed"], "finite_number", None),
    ("nan-prompt", b'{"prompt": NaN}', ["body", "prompt"], "string_type", None),
    ("huge-float-seed", b'{"prompt": "x", "seed": 1e400}', ["body", "seed"], "finite_number", None),
    (
        "duplicate-key-last-wins",
        b'{"prompt": "x", "seed": 1, "seed": 1180591620717411303424}',
        ["body", "seed"],
        "less_than_equal",
        None,
    ),
]

BAD_IMAGE_URLS = [
    ("", "url_parsing"),
    ("file:///etc/passwd", "url_scheme"),
    ("gopher://127.0.0.1:6379/_FLUSHALL", "url_scheme"),
    ("ftp://example.com/cat.png", "url_scheme"),
    ("cat.png", "url_parsing"),
    ("https://", "url_parsing"),
    ("https://example.com/a.png\r\nX-Injected: 1", "url_parsing"),
]

FIELD_CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    *[(f"image_url={url!r}", I2V, {**I2V_INPUT, "image_url": url}, "image_url", kind) for url, kind in BAD_IMAGE_URLS],
    *[
        (f"end_image_url={url!r}", I2V, {**I2V_INPUT, "end_image_url": url}, "end_image_url", kind)
        for url, kind in BAD_IMAGE_URLS
    ],
    ("seed=2**70", T2V, {"prompt": "x", "seed": 2**70}, "seed", "less_than_equal"),
    ("seed=2**32", T2V, {"prompt": "x", "seed": 2**32}, "seed", "less_than_equal"),
    ("seed=-2", T2V, {"prompt": "x", "seed": -2}, "seed", "greater_than_equal"),
]


async def assert_nothing_happened(gateway: Gateway) -> None:
    usage = await gateway.client.get("/admin/tenants/acme/usage", headers=gateway.admin)
    assert usage.status_code == 200, usage.text
    assert (usage.json()["reserved_micros"], usage.json()["spent_micros"]) == (0, 0)
    assert gateway.sim.stats()["calls"]["submit"] == 0
    assert await gateway.redis.keys("gw:v1:job:*") == [], "nothing is recorded for a rejected request"


async def budgeted_tenant(gateway: Gateway) -> dict[str, str]:
    body = {"id": "acme", "name": "Acme", "budget": BUDGET}
    assert (await gateway.client.post("/admin/tenants", json=body, headers=gateway.admin)).status_code == 201
    return await gateway.auth("acme")


def assert_fal_422(response: Any, loc: list[Any], error_type: str) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-fal-request-id"]
    detail: list[dict[str, Any]] = response.json()["detail"]
    assert [(entry["loc"], entry["type"]) for entry in detail] == [(loc, error_type)]
    assert all({"loc", "msg", "type"} <= entry.keys() and isinstance(entry["msg"], str) for entry in detail)
    return detail


@pytest.mark.parametrize("mode", ["queue", "run"])
@pytest.mark.parametrize(
    ("raw", "loc", "error_type", "reason"), [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES]
)
async def test_hostile_json_gets_a_fal_422_and_costs_nothing(
    gateway: Gateway, mode: str, raw: bytes, loc: list[Any], error_type: str, reason: str | None
) -> None:
    headers = {**await budgeted_tenant(gateway), "Content-Type": "application/json"}

    response = await gateway.client.post(f"/{mode}/{T2V}", content=raw, headers=headers)

    detail = assert_fal_422(response, loc, error_type)
    if loc == ["body"]:
        assert detail[0]["msg"] == f"JSON decode error: {TOO_DEEP}"
    if reason is not None:
        assert detail[0]["ctx"]["error"] == reason
    await assert_nothing_happened(gateway)


@pytest.mark.parametrize("mode", ["queue", "run"])
@pytest.mark.parametrize(
    ("endpoint", "body", "field", "error_type"), [c[1:] for c in FIELD_CASES], ids=[c[0] for c in FIELD_CASES]
)
async def test_hostile_fields_get_a_fal_422_and_cost_nothing(
    gateway: Gateway, mode: str, endpoint: str, body: dict[str, Any], field: str, error_type: str
) -> None:
    headers = await budgeted_tenant(gateway)

    response = await gateway.client.post(f"/{mode}/{endpoint}", json=body, headers=headers)

    detail = assert_fal_422(response, ["body", field], error_type)
    assert detail[0]["input"] == body[field] or detail[0]["input"] == str(body[field])
    await assert_nothing_happened(gateway)


async def test_the_estimate_route_refuses_deep_json_the_same_way(gateway: Gateway) -> None:
    headers = {**await budgeted_tenant(gateway), "Content-Type": "application/json"}

    response = await gateway.client.post(f"/v1/estimate/{T2V}", content=b"[" * 20_000, headers=headers)

    assert_fal_422(response, ["body"], "json_invalid")
    await assert_nothing_happened(gateway)


async def test_a_data_uri_image_is_still_accepted_and_forwarded(gateway: Gateway) -> None:
    headers = await budgeted_tenant(gateway)
    image = "data:image/png;base64,iVBORw0KGgo="

    response = await gateway.client.post(f"/queue/{I2V}", json={**I2V_INPUT, "image_url": image}, headers=headers)

    assert response.status_code == 200, response.text
    (forwarded,) = [r["input"] for r in gateway.sim.stats()["requests"].values()]
    assert forwarded["image_url"] == image


async def test_a_deeply_nested_body_to_a_route_litestar_decodes_is_a_422(gateway: Gateway) -> None:
    deep = b"[" * 20_000 + b"]" * 20_000
    response = await gateway.client.post(
        "/admin/tenants", content=deep, headers={**gateway.admin, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "json_invalid"
