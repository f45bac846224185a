"""The real ``@fal-ai/client`` (tests/e2e/js, pinned by its lockfile) under Node against the gateway and simulator
processes, in both of its set-ups: ``requestMiddleware`` rewriting fal's hosts to the gateway's prefixes, and
``proxyUrl: {url, when: "always"}`` through the gateway's server-proxy endpoint (service/proxy.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.e2e import Processes, running, tls_processes
from tests.support.redis import flush

pytestmark = pytest.mark.e2e
JS = Path(__file__).resolve().parent / "js"
MIN_NODE = 18
T2V = "fal-ai/bytedance/seedance/v1.5/pro/text-to-video"
SETUPS = ("middleware", "proxy")
SUBMIT_TIMEOUT = 3.0  # the gateway's, short enough to be reached by a slowed simulator
RUN_TIMEOUT = 4.0


def _node() -> str | None:
    """The ``node`` to run, once the npm package is installed; None where this box has none (outside CI only)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False) if node else None
    major = int(version.stdout.strip().lstrip("v").split(".")[0]) if version and version.returncode == 0 else 0
    if node is None or npm is None or major < MIN_NODE:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs node >= {MIN_NODE} and npm (.ci/run installs them); found node={node} npm={npm}")
        return None
    if not (JS / "node_modules" / "@fal-ai" / "client" / "package.json").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True)
    return node


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Processes]:
    """The rig of tests/e2e/conftest.py, with the simulator as fal's storage API too (uploads)."""
    procs = tls_processes(tmp_path_factory.mktemp("e2e-js"), redis_url)
    procs.extra_env["GATEWAY_UPSTREAM_REST_URL"] = procs.sim_url
    procs.extra_env["GATEWAY_UPSTREAM_SUBMIT_TIMEOUT_SECONDS"] = str(SUBMIT_TIMEOUT)
    procs.extra_env["GATEWAY_RUN_TIMEOUT_SECONDS"] = str(RUN_TIMEOUT)
    with running(procs, lambda: flush(redis_url)) as started:
        yield started


@pytest.fixture(scope="module")
def node() -> str:
    found = _node()
    if found is None:
        pytest.skip(f"needs node >= {MIN_NODE} and npm (not in CI)")
    return found


def _js(processes: Processes, node: str, setup: str, scenario: str, key: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAL_")} | {"NODE_EXTRA_CA_CERTS": str(processes.ca)}
    done = subprocess.run(
        [node, "scenarios.mjs", setup, scenario, processes.gw_url, key],
        cwd=JS,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    seen: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    _assert_the_set_up_was_used(processes, setup, seen["sent"])
    return seen


def _assert_the_set_up_was_used(processes: Processes, setup: str, sent: list[dict[str, Any]]) -> None:
    calls = [c for c in sent if c["method"] != "PUT" or c["target"] is not None]  # not the storage PUT
    assert calls
    if setup == "proxy":
        assert all(c["url"] == f"{processes.gw_url}/api/fal/proxy" for c in calls), calls
        lines = [json.loads(line) for line in processes.log_text().splitlines() if line.startswith("{")]
        assert any(line.get("proxied") for line in lines), "the gateway logs the calls as proxied"
        assert all(
            c["target"].startswith(("https://queue.fal.run/", "https://fal.run/", "https://rest.fal.ai/"))
            for c in calls
        )
    else:
        assert all(c["url"].startswith(processes.gw_url) and c["target"] is None for c in calls), calls


@pytest.mark.parametrize("setup", SETUPS)
def test_subscribe_with_logs(processes: Processes, node: str, setup: str) -> None:
    seen = _js(processes, node, setup, "subscribe_with_logs", processes.new_key(f"js-sub-{setup}"))
    assert seen["result"]["seed"] == 7
    assert seen["result"]["video"]["url"].endswith(".mp4")
    statuses = [u["status"] for u in seen["updates"]]
    assert "IN_PROGRESS" in statuses
    assert any(u["logs"] for u in seen["updates"]), "logs: true delivers the progress logs to onQueueUpdate"


@pytest.mark.parametrize("setup", SETUPS)
def test_queue_submit_status_and_result(processes: Processes, node: str, setup: str) -> None:
    seen = _js(processes, node, setup, "queue", processes.new_key(f"js-queue-{setup}"))
    assert seen["statuses"][-1] == "COMPLETED"
    assert seen["finalLogs"], "status with logs=1"
    assert seen["result"]["seed"] == 11
    assert seen["resultRequestId"] == seen["requestId"]
    assert seen["requestId"] not in processes.sim_stats()["requests"], "upstream ids never reach clients"
    targets = [c["target"] or c["url"] for c in seen["sent"]]
    assert any(t.endswith(f"/requests/{seen['requestId']}/status?logs=1") for t in targets)


@pytest.mark.parametrize("setup", SETUPS)
def test_a_validation_error_is_an_api_error_with_fals_body(processes: Processes, node: str, setup: str) -> None:
    seen = _js(processes, node, setup, "validation_error", processes.new_key(f"js-422-{setup}"))
    assert seen["name"] == "ValidationError"
    assert seen["status"] == 422
    (problem,) = seen["body"]["detail"]
    assert problem["loc"] == ["body", "duration"]


@pytest.mark.parametrize("setup", SETUPS)
def test_an_uploaded_image_is_used_as_image_url(processes: Processes, node: str, setup: str) -> None:
    seen = _js(processes, node, setup, "upload", processes.new_key(f"js-upload-{setup}"))
    assert seen["result"]["video"]["url"].endswith(".mp4")
    forwarded = [r["input"] for r in processes.sim_stats()["requests"].values() if r["input"].get("image_url")]
    assert any(f["image_url"] == seen["url"] for f in forwarded), "the uploaded file's URL went to the model"
    initiate = [c for c in seen["sent"] if "/storage/upload/initiate" in (c["target"] or c["url"])]
    assert initiate, seen["sent"]


def _submits(processes: Processes) -> int:
    return int(processes.sim_stats()["calls"]["submit"])


@pytest.mark.parametrize("setup", SETUPS)
def test_a_submit_fal_may_have_accepted_is_not_re_sent(processes: Processes, node: str, setup: str) -> None:
    """The JS client re-sends a submit answered 504 (up to 3 times) unless the answer says the timeout was a
    deadline: the gateway says so, as a re-send would be a second, separately paid job."""
    before = _submits(processes)
    processes.sim_fault(op="submit", kind="timeout", delay_seconds=SUBMIT_TIMEOUT + 2, times=4)
    try:
        seen = _js(processes, node, setup, "submit_unknown", processes.new_key(f"js-unknown-{setup}"))
        submitted = _submits(processes) - before
    finally:
        httpx.post(f"{processes.sim_url}/_sim/reset", timeout=5)  # drops the faults not taken
    assert (seen["status"], seen["body"]["error_type"], seen["timeoutType"]) == (504, "upstream_submit_unknown", "user")
    submits = [c for c in seen["sent"] if c["method"] == "POST"]
    assert len(submits) == 1, submits
    assert submitted == 1, "fal saw one submit"


@pytest.mark.parametrize("setup", SETUPS)
def test_a_run_past_the_gateways_run_timeout_is_not_re_sent(processes: Processes, node: str, setup: str) -> None:
    before = _submits(processes)
    configured = httpx.post(f"{processes.sim_url}/_sim/config", json={"processing_seconds": RUN_TIMEOUT + 3}, timeout=5)
    assert configured.status_code == 200, configured.text
    try:
        seen = _js(processes, node, setup, "run_timeout", processes.new_key(f"js-run-timeout-{setup}"))
        submitted = _submits(processes) - before
    finally:
        httpx.post(f"{processes.sim_url}/_sim/reset", timeout=5)
    assert (seen["status"], seen["body"]["error_type"], seen["timeoutType"]) == (504, "request_timeout", "user")
    assert len([c for c in seen["sent"] if c["method"] == "POST"]) == 1
    assert submitted == 1, "fal saw one job"
