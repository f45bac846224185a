"""The real ``fal_client`` against the gateway over TLS, with the gateway and the simulator as separate processes."""

from __future__ import annotations

import json

import pytest

from tests.support.e2e import E2E_ADMIN_TOKEN, SIM_KEY, Processes

pytestmark = pytest.mark.e2e


def test_submit_status_and_result(processes: Processes) -> None:
    # The tracker's first upstream poll (at 0.1 s, answered IN_QUEUE) takes a second: the job is IN_QUEUE in Redis,
    # where the gateway answers status from, for at least that long after the submit.
    key = processes.new_key("alpha")
    processes.sim_fault(op="status", kind="slow", delay_seconds=1.0, times=1)
    seen = processes.fal_client("submit_status_result", key)
    assert seen["first_status"] == "Queued"
    assert seen["final_status"] == "Completed"
    assert seen["result"]["seed"] == 11
    assert seen["result"]["video"]["url"].endswith(".mp4")
    assert seen["result_by_id"] == seen["result"]
    assert seen["request_id"] not in processes.sim_stats()["requests"], "upstream ids never reach clients"


def test_subscribe_with_logs(processes: Processes) -> None:
    seen = processes.fal_client("subscribe_with_logs", processes.new_key("alpha"))
    assert seen["result"]["seed"] == 7
    types = [u["type"] for u in seen["updates"]]
    assert types[-1] == "Completed"
    assert "InProgress" in types
    in_progress_logs = [u["logs"] for u in seen["updates"] if u["type"] == "InProgress"]
    assert any(logs for logs in in_progress_logs), "with_logs=True delivers upstream progress logs"


def test_subscribe_without_logs(processes: Processes) -> None:
    seen = processes.fal_client("subscribe_without_logs", processes.new_key("alpha"))
    assert seen["result"]["video"]["content_type"] == "video/mp4"
    assert all(not u["logs"] for u in seen["updates"])


def test_run(processes: Processes) -> None:
    seen = processes.fal_client("run", processes.new_key("alpha"))
    assert seen["result"]["seed"] == 7


def test_cancel_in_flight_and_after_completion(processes: Processes) -> None:
    key = processes.new_key("alpha")
    cancelled = processes.fal_client("cancel_in_flight", key)
    assert cancelled["final_status"] == "Completed"
    assert cancelled["error_type"] == "client_cancelled"
    assert cancelled["result_error"]["status_code"] == 499
    late = processes.fal_client("cancel_after_completion", key)
    assert late["cancel_error"]["status_code"] == 400
    assert "ALREADY_COMPLETED" in late["cancel_error"]["message"]


def test_image_to_video_with_both_frames_as_2_mb_data_uris(processes: Processes) -> None:
    seen = processes.fal_client("data_uri_frames", processes.new_key("frames"))
    assert seen["body_bytes"] > 5_000_000
    assert seen["result"]["video"]["url"].endswith(".mp4")
    (forwarded,) = [
        r["input"] for rid, r in processes.sim_stats()["requests"].items() if r["input"].get("end_image_url")
    ]
    assert forwarded["image_url"].startswith("data:image/png;base64,")
    assert len(forwarded["image_url"]) == len(forwarded["end_image_url"]) > 2 * 1024 * 1024


def test_bad_key_is_refused_with_401(processes: Processes) -> None:
    seen = processes.fal_client("bad_key", "sgw_aaaaaaaaaaaaaaaaaaaa:" + "x" * 43)
    assert seen["status_code"] == 401
    assert seen["error_type"] == "unauthorized"


def test_killing_the_gateway_mid_flight_loses_no_job(processes: Processes) -> None:
    key = processes.new_key("restart")
    ids = processes.fal_client("submit_only", key, "5")["request_ids"]
    processes.kill_gateway()
    processes.start_gateway()
    results = processes.fal_client("results_of", key, json.dumps(ids))["results"]
    assert [r["seed"] for r in results] == [0, 1, 2, 3, 4]


def test_no_secret_appears_in_the_logs(processes: Processes) -> None:
    key = processes.new_key("secrets")
    processes.fal_client("run", key)
    key_id = key.split(":")[0]
    rotated = processes.admin("POST", f"/admin/tenants/secrets/keys/{key_id}/rotate", json={"grace_seconds": 0})
    successor = rotated.json()["key"]
    processes.fal_client("run", successor)
    processes.admin("DELETE", f"/admin/tenants/secrets/keys/{successor.split(':')[0]}")
    wrong_secret = f"{key_id}:{'w' * 43}"
    assert processes.fal_client("bad_key", wrong_secret)["status_code"] == 401
    assert processes.fal_client("bad_key", successor)["status_code"] == 401
    text = processes.log_text()
    assert "http_request" in text, "the logs were captured"
    assert "/admin/tenants/{tenant_id}/keys/{key_id}/rotate" in text
    for secret in (key, successor, wrong_secret, SIM_KEY, E2E_ADMIN_TOKEN):
        assert secret not in text
        assert secret.split(":")[-1] not in text
