"""fal's server-proxy protocol at ``GATEWAY_PROXY_PATH``: mapped targets are served exactly as their own routes
(auth, validation, limits, metrics), everything else refused as ``@fal-ai/server-proxy`` refuses it."""

from __future__ import annotations

from typing import Any

import pytest

from service.app import create_app
from tests.support.endpoints import I2V, I2V_INPUT, T2V, T2V_INPUT
from tests.support.gateway import BASE_URL, Gateway, serve_in_process, simulator_transport

PROXY = "/api/fal/proxy"
QUEUE, RUN = "https://queue.fal.run", "https://fal.run"


def _via(target: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {**(headers or {}), "x-fal-target-url": target}


def _count(gateway: Gateway, method: str, route: str, status_class: str) -> float:
    value = gateway.metrics.registry.get_sample_value(
        "gateway_http_requests_total", {"method": method, "route": route, "status_class": status_class}
    )
    return value or 0.0


async def test_a_queue_round_trip_through_the_proxy_matches_the_direct_routes(gateway: Gateway) -> None:
    auth = await gateway.auth()
    submitted = await gateway.client.post(PROXY, json=T2V_INPUT, headers=_via(f"{QUEUE}/{T2V}", auth))
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    rid = body["request_id"]
    assert submitted.headers["x-fal-request-id"] == rid
    # The URLs a submit hands back stay the gateway's own, as they would be without the proxy.
    assert body["status_url"] == f"{BASE_URL}/queue/fal-ai/bytedance/requests/{rid}/status"

    status_target = f"{QUEUE}/fal-ai/bytedance/requests/{rid}/status?logs=1"
    await gateway.wait_status(body["status_url"])
    status = await gateway.client.get(PROXY, headers=_via(status_target, auth))
    direct_status = await gateway.client.get(f"/queue/fal-ai/bytedance/requests/{rid}/status?logs=1", headers=auth)
    assert status.status_code == 200
    assert status.json()["logs"] == direct_status.json()["logs"], "the target's ?logs=1 reached the route"
    assert status.json()["logs"]
    result = await gateway.client.get(PROXY, headers=_via(f"{QUEUE}/fal-ai/bytedance/requests/{rid}", auth))
    direct = await gateway.client.get(f"/queue/fal-ai/bytedance/requests/{rid}", headers=auth)
    assert (result.status_code, result.json()) == (direct.status_code, direct.json())
    cancel = await gateway.client.put(PROXY, headers=_via(f"{QUEUE}/fal-ai/bytedance/requests/{rid}/cancel", auth))
    assert (cancel.status_code, cancel.json()) == (400, {"status": "ALREADY_COMPLETED"})


async def test_run_through_the_proxy_answers_with_the_output(gateway: Gateway) -> None:
    response = await gateway.client.post(PROXY, json=I2V_INPUT, headers=_via(f"{RUN}/{I2V}", await gateway.auth()))
    assert response.status_code == 200, response.text
    assert response.json()["video"]["url"]


async def test_the_mapped_routes_metrics_label_counts_a_proxied_request(gateway: Gateway) -> None:
    before = _count(gateway, "POST", "/queue/{endpoint_id}", "2xx")
    response = await gateway.client.post(PROXY, json=T2V_INPUT, headers=_via(f"{QUEUE}/{T2V}", await gateway.auth()))
    assert response.status_code == 200
    assert _count(gateway, "POST", "/queue/{endpoint_id}", "2xx") == before + 1
    assert _count(gateway, "POST", PROXY, "2xx") == 0


async def test_the_tenant_authenticates_with_its_own_key(gateway: Gateway) -> None:
    response = await gateway.client.post(PROXY, json=T2V_INPUT, headers=_via(f"{QUEUE}/{T2V}"))
    direct = await gateway.client.post(f"/queue/{T2V}", json=T2V_INPUT)
    assert response.status_code == direct.status_code == 401
    assert response.json() == direct.json()
    wrong = await gateway.client.post(
        PROXY, json=T2V_INPUT, headers=_via(f"{QUEUE}/{T2V}", {"Authorization": "Key sgw_nope:nope"})
    )
    assert wrong.status_code == 401
    assert gateway.sim.stats()["calls"]["submit"] == 0


async def test_validation_errors_keep_fals_shape(gateway: Gateway) -> None:
    auth = await gateway.auth()
    response = await gateway.client.post(
        PROXY, json={"prompt": "x", "duration": "3"}, headers=_via(f"{RUN}/{T2V}", auth)
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "duration"]


async def test_the_targets_query_string_reaches_the_route(gateway: Gateway) -> None:
    auth = await gateway.auth()
    target = f"{QUEUE}/{T2V}?fal_webhook=http%3A%2F%2F127.0.0.1%2Fhook"
    response = await gateway.client.post(PROXY, json=T2V_INPUT, headers=_via(target, auth))
    assert response.status_code == 422, "the webhook policy saw the target's fal_webhook"
    assert response.json()["detail"][0]["loc"] == ["query", "fal_webhook"]
    ignored = await gateway.client.post(f"{PROXY}?fal_webhook=x", json=T2V_INPUT, headers=_via(f"{QUEUE}/{T2V}", auth))
    assert ignored.status_code == 200, "the proxy URL's own query string is not the target's"


async def test_a_targets_fragment_is_dropped(gateway: Gateway) -> None:
    auth = await gateway.auth()
    submitted = await gateway.client.post(PROXY, json=T2V_INPUT, headers=_via(f"{QUEUE}/{T2V}#part", auth))
    assert submitted.status_code == 200, submitted.text
    rid = submitted.json()["request_id"]
    status = await gateway.client.get(
        PROXY, headers=_via(f"{QUEUE}/fal-ai/bytedance/requests/{rid}/status?logs=1#logs", auth)
    )
    assert status.status_code in {200, 202}, status.text
    assert status.json()["request_id"] == rid
    assert status.json()["logs"] is not None, "the query before the fragment still reached the route"


async def test_body_limits_of_the_mapped_route_still_apply(gateway: Gateway) -> None:
    auth = await gateway.auth()
    small = {"prompt": "x" * (gateway.settings.max_body_bytes + 10)}
    too_large = await gateway.client.post(PROXY, json=small, headers=_via(f"{QUEUE}/{T2V}", auth))
    assert too_large.status_code == 413
    assert too_large.json()["error_type"] == "payload_too_large"
    frame = "data:image/png;base64," + "A" * (3 * 1024 * 1024)
    large = {"prompt": "two frames", "image_url": frame, "end_image_url": frame}
    accepted = await gateway.client.post(PROXY, json=large, headers=_via(f"{QUEUE}/{I2V}", auth))
    assert accepted.status_code == 200, "image-to-video keeps its own larger limit through the proxy"
    limit = gateway.settings.image_to_video_max_body_bytes
    huge = {"prompt": "x", "image_url": "data:," + "A" * limit}
    beyond = await gateway.client.post(PROXY, json=huge, headers=_via(f"{QUEUE}/{I2V}", auth))
    assert beyond.status_code == 413
    assert gateway.sim.stats()["calls"]["submit"] == 1


@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        ({}, 400, "Invalid request"),
        ({"x-fal-target-url": "https://example.com/anything"}, 412, "Invalid x-fal-target-url header"),
        ({"x-fal-target-url": "https://queue.fal.run/fal-ai/flux/dev"}, 400, "Invalid request"),
        ({"x-fal-target-url": f"http://queue.fal.run/{T2V}"}, 400, "Invalid request"),
        ({"x-fal-target-url": f"https://queue.fal.run/{T2V}/../../admin"}, 400, "Invalid request"),
        ({"x-fal-target-url": f"https://queue.fal.run/{T2V}?" + "a" * 10_000}, 400, "Invalid request"),
    ],
)
async def test_refusals_answer_as_the_proxy_does(
    gateway: Gateway, headers: dict[str, str], status: int, body: str
) -> None:
    before = _count(gateway, "POST", PROXY, "4xx")
    response = await gateway.client.post(PROXY, json=T2V_INPUT, headers={**await gateway.auth(), **headers})
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == body
    assert response.headers["x-fal-request-id"]
    assert _count(gateway, "POST", PROXY, "4xx") == before + 1
    assert gateway.sim.stats()["calls"]["submit"] == 0


async def test_a_target_given_twice_is_refused(gateway: Gateway) -> None:
    headers = [("x-fal-target-url", f"{QUEUE}/{T2V}"), ("x-fal-target-url", f"{QUEUE}/{I2V}")]
    auth: list[tuple[str, str]] = list((await gateway.auth()).items())
    response = await gateway.client.post(PROXY, json=T2V_INPUT, headers=[*auth, *headers])
    assert (response.status_code, response.json()) == (400, "Invalid request")


@pytest.mark.parametrize("method", ["DELETE", "PATCH", "HEAD"])
async def test_other_methods_get_405(gateway: Gateway, method: str) -> None:
    response = await gateway.client.request(method, PROXY, headers=_via(f"{QUEUE}/{T2V}", await gateway.auth()))
    assert response.status_code == 405


async def test_the_proxy_path_is_a_setting(gateway: Gateway, settings: Any, redis_client: Any) -> None:
    custom = settings.model_copy(update={"proxy_path": "/fal"})
    app = create_app(custom, redis=redis_client, upstream_transport=simulator_transport(gateway.sim))
    auth = await gateway.auth()
    async with serve_in_process(app) as client:
        moved = await client.post("/fal", json=T2V_INPUT, headers=_via(f"{QUEUE}/{T2V}", auth))
        old = await client.post(PROXY, json=T2V_INPUT, headers=_via(f"{QUEUE}/{T2V}", auth))
    assert moved.status_code == 200
    assert old.status_code == 404
