"""The fal queue and run protocol as clients see it: shapes, status codes, headers, progression, streaming."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import pytest

from service import keys
from service.app import create_app
from service.simulator.faults import FaultRule
from tests.support.admin import ADMIN_TOKEN, FAL_KEY
from tests.support.endpoints import I2V, I2V_INPUT, T2V
from tests.support.gateway import BASE_URL, Gateway, serve_in_process, simulator_transport
from tests.support.waiting import eventually


async def test_submit_returns_fal_shape_with_gateway_urls_and_own_id(gateway: Gateway) -> None:
    response = await gateway.submit(I2V, I2V_INPUT)

    assert response.status_code == 200
    body = response.json()
    rid = body["request_id"]
    uuid.UUID(rid)
    assert response.headers["x-fal-request-id"] == rid
    assert response.headers["content-type"].startswith("application/json")
    assert body["status"] == "IN_QUEUE"
    assert body["queue_position"] == 0, "nothing was queued before it"
    assert body["logs"] is None
    assert body["metrics"] == {}
    assert body["response_url"] == f"{BASE_URL}/queue/fal-ai/bytedance/requests/{rid}"
    assert body["status_url"] == f"{BASE_URL}/queue/fal-ai/bytedance/requests/{rid}/status"
    assert body["cancel_url"] == f"{BASE_URL}/queue/fal-ai/bytedance/requests/{rid}/cancel"
    upstream_ids = set(gateway.sim.stats()["requests"])
    assert rid not in upstream_ids, "the gateway must issue its own ids, never expose upstream ones"
    assert len(upstream_ids) == 1


async def test_public_url_setting_is_used_in_urls(gateway: Gateway, settings: Any, redis_client: Any) -> None:
    custom = settings.model_copy(update={"public_url": "https://gw.example.com/"})
    app = create_app(custom, redis=redis_client, upstream_transport=simulator_transport(gateway.sim))
    async with serve_in_process(app) as client:
        response = await client.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=await gateway.auth())
    assert response.json()["status_url"].startswith("https://gw.example.com/queue/fal-ai/bytedance/requests/")


async def test_status_progresses_to_completed_with_logs_and_result(gateway: Gateway) -> None:
    submitted = (await gateway.submit(I2V, {**I2V_INPUT, "seed": 42, "resolution": "480p"})).json()
    headers = await gateway.auth()
    progression = ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    seen: list[str] = []

    async def completed_with_logs() -> dict[str, Any] | None:
        response = await gateway.client.get(submitted["status_url"], params={"logs": "1"}, headers=headers)
        body: dict[str, Any] = response.json()
        # Which of the three a poll sees depends on when it lands; the order they come in does not.
        assert body["status"] in progression
        seen.append(body["status"])
        assert response.status_code == (200 if body["status"] == "COMPLETED" else 202)
        assert response.headers["x-fal-request-id"] == submitted["request_id"]
        assert "logs" in body
        if body["status"] == "IN_QUEUE":
            assert isinstance(body["queue_position"], int)
        return body if body["status"] == "COMPLETED" else None

    final = await eventually(completed_with_logs)
    assert seen == sorted(seen, key=progression.index), "the status only ever moves forward"
    assert "error" not in final
    assert isinstance(final["metrics"]["inference_time"], float)
    assert [entry["message"] for entry in final["logs"]], "logs=1 returns the upstream logs"
    assert {"message", "level", "source", "timestamp"} <= set(final["logs"][0])

    plain = (await gateway.client.get(submitted["status_url"], params={"logs": "false"}, headers=headers)).json()
    assert plain["logs"] is None

    result = await gateway.client.get(submitted["response_url"], headers=headers)
    assert result.status_code == 200
    assert result.headers["x-fal-request-id"] == submitted["request_id"]
    output = result.json()
    assert output["seed"] == 42
    assert output["video"]["url"].endswith("480p-864x496.mp4")
    assert output["video"]["content_type"] == "video/mp4"


@pytest.mark.parametrize("flag", ["0", "1", "true", "false"])
async def test_status_accepts_every_logs_flag_spelling(gateway: Gateway, flag: str) -> None:
    gateway.sim.configure(processing_seconds=30)
    submitted = (await gateway.submit()).json()
    response = await gateway.client.get(submitted["status_url"], params={"logs": flag}, headers=await gateway.auth())
    assert response.status_code == 202, "still running"
    assert (response.json()["logs"] is None) == (flag in {"0", "false"})


async def test_result_before_completion_is_a_fal_request_error(gateway: Gateway) -> None:
    gateway.sim.configure(processing_seconds=30)
    submitted = (await gateway.submit()).json()
    response = await gateway.client.get(submitted["response_url"], headers=await gateway.auth())
    assert response.status_code == 400
    assert response.json() == {"detail": "Request is still in progress", "error_type": "request_in_progress"}


async def test_job_completes_with_no_client_polling(gateway: Gateway) -> None:
    rid = (await gateway.submit()).json()["request_id"]

    async def completed_in_redis() -> bool:
        return await gateway.redis.hget(keys.job(rid), "state") == '"COMPLETED"'

    await eventually(completed_in_redis)
    record = await gateway.redis.hgetall(keys.job(rid))
    assert json.loads(record["outcome"]) == "ok"
    assert json.loads(record["result"])["video"]["url"].endswith(".mp4")

    async def left_the_schedule() -> bool:  # the tracker settles and caches the result first, then unschedules
        return await gateway.redis.zscore(keys.tracker_due(), rid) is None

    assert await eventually(left_the_schedule, timeout=5), "finished jobs leave the schedule"
    assert await gateway.redis.ttl(keys.job(rid)) > 0, "completed jobs expire after the retention period"


async def test_run_waits_and_returns_the_result_body(gateway: Gateway) -> None:
    response = await gateway.client.post(
        f"/run/{T2V}", json={"prompt": "a fox", "seed": 5}, headers=await gateway.auth()
    )
    assert response.status_code == 200
    assert response.json()["seed"] == 5
    rid = response.headers["x-fal-request-id"]
    uuid.UUID(rid)
    status = await gateway.client.get(f"/queue/fal-ai/bytedance/requests/{rid}/status", headers=await gateway.auth())
    assert status.json()["status"] == "COMPLETED", "run jobs are ordinary tracked jobs"


async def test_run_returns_upstream_model_error_status_and_body(gateway: Gateway) -> None:
    detail = {"detail": [{"loc": ["body", "prompt"], "msg": "unsafe", "type": "content_policy_violation"}]}
    gateway.sim.add_fault(FaultRule(op="job", kind="fail", status=422, body=detail))
    response = await gateway.client.post(f"/run/{T2V}", json={"prompt": "x"}, headers=await gateway.auth())
    assert response.status_code == 422
    assert response.json() == detail


async def test_status_stream_sends_one_event_per_change_and_closes_after_completed(gateway: Gateway) -> None:
    submitted = (await gateway.submit()).json()
    async with gateway.client.stream(
        "GET", submitted["status_url"] + "/stream", params={"logs": "1"}, headers=await gateway.auth()
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-fal-request-id"] == submitted["request_id"]
        events = [
            json.loads(line.removeprefix("data:").strip())
            async for line in response.aiter_lines()
            if line.startswith("data:")
        ]
    assert events[-1]["status"] == "COMPLETED"
    assert all(e["status"] != "COMPLETED" for e in events[:-1])
    assert all(a != b for a, b in itertools.pairwise(events)), "an event only when something changed"


async def test_webhook_url_is_stored_with_the_job(gateway: Gateway) -> None:
    hook = "https://hooks.example.com/fal?tenant=acme"
    rid = (await gateway.submit(params={"fal_webhook": hook})).json()["request_id"]
    stored = await gateway.redis.hget(keys.job(rid), "webhook_url")
    assert stored is not None
    assert json.loads(stored) == hook


@pytest.mark.parametrize(
    "hook",
    [
        "http://127.0.0.1:8080/x",
        "http://169.254.169.254/latest/meta-data",
        "ftp://example.com/x",
        "http://localhost/hook",
        "not a url",
        "http://2130706433/hook",  # 127.0.0.1 in another spelling
        "http://[::ffff:127.0.0.1]/hook",
        "http://10.0.0.1/hook",  # private: refused unless GATEWAY_WEBHOOK_ALLOW_PRIVATE
        "http://@hooks.example.com/x",  # an empty user is still credentials
        "http://hooks.example.com/x\r\nX-Injected: 1",
    ],
)
async def test_hostile_webhook_urls_are_refused_before_upstream(gateway: Gateway, hook: str) -> None:
    response = await gateway.submit(params={"fal_webhook": hook})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "fal_webhook"]
    assert gateway.sim.stats()["calls"]["submit"] == 0


async def test_health_readiness_and_metrics(gateway: Gateway) -> None:
    assert (await gateway.client.get("/healthz")).json() == {"status": "ok"}
    assert (await gateway.client.get("/readyz")).status_code == 200
    await gateway.submit()
    text = (await gateway.client.get("/metrics")).text
    assert (
        'gateway_jobs_submitted_total{endpoint="fal-ai/bytedance/seedance/v1.5/pro/text-to-video",mode="queue"}' in text
    )
    assert FAL_KEY not in text
    assert ADMIN_TOKEN not in text
