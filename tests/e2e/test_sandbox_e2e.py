"""A sandbox tenant through real processes: the real ``fal_client`` gets its jobs done by the gateway's embedded
sandbox simulator while the gateway's configured upstream (a separate simulator process) records no request, and its
``fal_client.upload`` goes to the sandbox's files, never to fal's storage."""

from __future__ import annotations

import httpx
import pytest

from tests.support.e2e import Processes

pytestmark = pytest.mark.e2e


def _sandbox_key(processes: Processes, tenant: str) -> str:
    created = processes.admin("POST", "/admin/tenants", json={"id": tenant, "name": tenant, "sandbox": True})
    assert created.status_code == 201, created.text
    issued = processes.admin("POST", f"/admin/tenants/{tenant}/keys")
    assert issued.status_code == 201, issued.text
    key: str = issued.json()["key"]
    return key


def test_a_sandbox_tenants_jobs_complete_while_the_upstream_receives_nothing(processes: Processes) -> None:
    assert httpx.post(f"{processes.sim_url}/_sim/reset", timeout=5).status_code == 200
    key = _sandbox_key(processes, "ci-sandbox")

    subscribed = processes.fal_client("subscribe_with_logs", key)
    assert subscribed["result"]["seed"] == 7
    assert subscribed["result"]["video"]["url"].startswith(f"{processes.gw_url}/_sandbox/media/")
    assert [u["type"] for u in subscribed["updates"]][-1] == "Completed"
    assert processes.fal_client("run", key)["result"]["video"]["content_type"] == "video/mp4"

    stats = processes.sim_stats()
    assert stats["calls"] == dict.fromkeys(stats["calls"], 0), stats["calls"]
    assert stats["requests"] == {}
    usage = processes.admin("GET", "/admin/tenants/ci-sandbox/usage").json()
    assert (usage["spent_micros"], usage["reserved_micros"]) == (0, 0)
    me = httpx.get(f"{processes.gw_url}/v1/me", headers={"Authorization": f"Key {key}"}, verify=processes.tls())
    assert me.headers["x-gateway-sandbox"] == "true"


@pytest.mark.parametrize("repository", ["fal_v3", "fal"])
def test_a_sandbox_tenants_upload_stays_in_the_sandbox(processes: Processes, repository: str) -> None:
    assert httpx.post(f"{processes.sim_url}/_sim/reset", timeout=5).status_code == 200
    key = _sandbox_key(processes, f"ci-sandbox-up-{repository.replace('_', '-')}")

    seen = processes.fal_client(repository, key, processes.gw_url, timeout=90, module="tests.e2e.upload_scenarios")
    assert seen["url"].startswith(f"{processes.gw_url}/_sandbox/files/"), seen["url"]
    assert seen["status"] == "Completed"
    assert seen["result"]["video"]["url"].startswith(f"{processes.gw_url}/_sandbox/media/")
    served = httpx.get(seen["url"], verify=processes.tls(), timeout=5)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.content.startswith(b"\x89PNG")
    stats = processes.sim_stats()
    assert stats["calls"] == dict.fromkeys(stats["calls"], 0), stats["calls"]
