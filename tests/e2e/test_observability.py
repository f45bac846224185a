"""What operators see of a real gateway process: metrics on their own port, route labels that tell fal's calls apart,
every metric the dashboard and the alerts use, the canonical request log line, and ``x-request-id``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.deploy import exported, referenced_metrics
from tests.support.e2e import Processes, running, tls_processes
from tests.support.loopback import free_ports
from tests.support.redis import flush
from tests.support.waiting import eventually_sync as eventually

ENDPOINT = "fal-ai/bytedance/seedance/v1.5/pro/text-to-video"
REQUESTS = "/queue/fal-ai/bytedance/requests"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[tuple[Processes, int]]:
    procs = tls_processes(tmp_path_factory.mktemp("observability"), redis_url)
    metrics_port = free_ports(1, avoid={procs.sim_port, procs.gw_port})
    procs.extra_env.update({"GATEWAY_METRICS_PORT": str(metrics_port), "GATEWAY_METRICS_REFRESH_SECONDS": "0.2"})
    with running(procs, lambda: flush(redis_url)) as started:
        yield started, metrics_port


@pytest.fixture(scope="module")
def scripted(rig: tuple[Processes, int]) -> dict[str, Any]:
    """One of every call a client makes (submit, status, stream, result, cancel, run), by a tenant with a budget."""
    procs, _ = rig
    procs.admin("POST", "/admin/tenants", json={"id": "obs", "name": "obs", "budget": {"limit_micros": 50_000_000}})
    key = procs.admin("POST", "/admin/tenants/obs/keys").json()["key"]
    headers = {"Authorization": f"Key {key}"}
    with httpx.Client(base_url=procs.gw_url, verify=procs.tls(), headers=headers, timeout=30) as client:
        submitted = client.post(f"/queue/{ENDPOINT}", json={"prompt": "a fox"}, headers={"x-request-id": "trace-42"})
        rid = submitted.json()["request_id"]
        eventually(lambda: client.get(f"{REQUESTS}/{rid}/status").json()["status"] == "COMPLETED", timeout=30)
        with client.stream("GET", f"{REQUESTS}/{rid}/status/stream") as stream:
            stream.read()
        result = client.get(f"{REQUESTS}/{rid}", headers={"x-request-id": "bad id with spaces"})
        cancel = client.put(f"{REQUESTS}/{rid}/cancel")
        run = client.post(f"/run/{ENDPOINT}", json={"prompt": "a hare"})
    return {"rid": rid, "submitted": submitted, "result": result, "cancel": cancel, "run": run}


def scrape(port: int, scheme: str = "http", verify: Any = True) -> tuple[dict[str, str], list[Sample]]:
    text = httpx.get(f"{scheme}://127.0.0.1:{port}/metrics", verify=verify, timeout=10).text
    families = list(text_string_to_metric_families(text))
    return {f.name: f.type for f in families}, [s for f in families for s in f.samples]


def test_the_calls_answer_as_fal_does(scripted: dict[str, Any]) -> None:
    assert scripted["submitted"].status_code == 200
    assert scripted["result"].status_code == 200, scripted["result"].text
    assert scripted["cancel"].status_code == 400  # already completed
    assert scripted["run"].status_code == 200


def test_a_callers_request_id_is_echoed_and_a_bad_one_replaced(scripted: dict[str, Any]) -> None:
    assert scripted["submitted"].headers["x-request-id"] == "trace-42"
    result = scripted["result"]
    assert result.headers["x-request-id"] == result.headers["x-fal-request-id"] == scripted["rid"]


def test_metrics_on_their_own_port_carry_every_metric_the_dashboard_and_alerts_use(
    rig: tuple[Processes, int], scripted: dict[str, Any]
) -> None:
    procs, metrics_port = rig
    del scripted

    def census_ran() -> bool:
        _, samples = scrape(metrics_port)
        return any(s.name == "gateway_jobs_in_flight" for s in samples)

    eventually(census_ran, timeout=10)
    families, samples = scrape(metrics_port)
    missing = sorted(name for name in referenced_metrics() if not exported(name, families))
    assert not missing, f"the dashboard or alerts use metrics the gateway does not export: {missing}"
    main_families, _ = scrape(procs.gw_port, "https", procs.tls())
    assert families.keys() == main_families.keys(), "the metrics port serves the same registry as /metrics"

    routes = {s.labels["route"] for s in samples if s.name == "gateway_http_requests_total"}
    for route in (
        "/queue/{endpoint_id}",
        "/queue/{app}/requests/{request_id}/status",
        "/queue/{app}/requests/{request_id}/status/stream",
        "/queue/{app}/requests/{request_id}",
        "/queue/{app}/requests/{request_id}/cancel",
        "/run/{endpoint_id}",
    ):
        assert route in routes, f"{route} missing from {sorted(routes)}"
    overhead = {s.labels["route"]: s.value for s in samples if s.name == "gateway_http_overhead_seconds_count"}
    assert overhead.get("/queue/{endpoint_id}", 0) >= 1
    assert "/run/{endpoint_id}" not in overhead, "a route that waits for its job has no overhead"
    redis_commands = {s.labels["command"] for s in samples if s.name == "gateway_redis_command_duration_seconds_count"}
    assert {"EVALSHA", "PIPELINE", "HGETALL"} <= redis_commands
    assert next(s.value for s in samples if s.name == "gateway_redis_up") == 1
    limits = {s.labels["tenant"]: s.value for s in samples if s.name == "gateway_budget_limit_micros"}
    assert limits.get("obs") == 50_000_000
    states = {s.labels["state"] for s in samples if s.name == "gateway_jobs_in_flight"}
    assert states == {"SUBMITTING", "IN_QUEUE", "IN_PROGRESS"}


def test_each_request_logs_one_canonical_line(rig: tuple[Processes, int], scripted: dict[str, Any]) -> None:
    procs, _ = rig
    lines = [json.loads(line) for line in procs.log_text().splitlines() if line.startswith("{")]
    submits = [
        line for line in lines if line.get("event") == "http_request" and line.get("route") == "/queue/{endpoint_id}"
    ]
    assert len(submits) == 1
    (submit,) = submits
    assert submit["request_id"] == scripted["rid"]
    assert submit["caller_request_id"] == "trace-42"
    assert submit["tenant_id"] == "obs"
    assert submit["endpoint_id"] == ENDPOINT
    assert submit["status"] == 200
    assert submit["cost_micros"] > 0
    assert submit["upstream_ms"] > 0
    assert submit["gateway_ms"] > 0
    assert submit["duration_ms"] == pytest.approx(submit["gateway_ms"] + submit["upstream_ms"], abs=0.05)
    assert "cache" in submit
