"""The real ``fal_client`` uploads an image through the gateway (both of its repositories: ``fal_v3``, the CDN, and
``fal``, initiate and PUT) and runs image-to-video with the URL it got, against real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.e2e import Processes, running, tls_processes
from tests.support.redis import flush

SCENARIOS = "tests.e2e.upload_scenarios"


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Processes]:
    procs = tls_processes(tmp_path_factory.mktemp("e2e-uploads"), redis_url)
    procs.extra_env["GATEWAY_UPSTREAM_REST_URL"] = procs.sim_url  # fal's storage API: the simulator too
    procs.extra_env["GATEWAY_CACHE_CONTENT_HASHING"] = "true"  # the gateway itself reads the uploaded image
    with running(procs, lambda: flush(redis_url)) as started:
        yield started


def _upload_and_run(processes: Processes, key: str, repository: str, *args: str) -> dict[str, Any]:
    return processes.fal_client(repository, key, *args, timeout=90, module=SCENARIOS)


@pytest.mark.parametrize("repository", ["fal_v3", "fal"])
def test_fal_client_upload_then_image_to_video(processes: Processes, repository: str) -> None:
    key = processes.new_key("uploader")
    seen = _upload_and_run(processes, key, repository, processes.gw_url)
    assert seen["url"].startswith(f"{processes.sim_url}/files/")
    assert seen["status"] == "Completed"
    assert seen["result"]["video"]["url"]
    served = httpx.get(seen["url"], timeout=5)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("image/png")
    audit = processes.admin("GET", "/admin/audit").json()["entries"]
    uploads = [entry for entry in audit if entry["action"] == "storage.upload"]
    assert uploads[0]["target"] == "uploader"
    assert uploads[0]["details"]["route"] == ("cdn" if repository == "fal_v3" else "upload_url")
    assert key.split(":")[1] not in processes.log_text()


def test_fal_client_upload_file(processes: Processes, tmp_path: Path) -> None:
    key = processes.new_key("uploader")
    seen = _upload_and_run(processes, key, "fal_v3", processes.gw_url, str(tmp_path / "frame.png"))
    assert seen["url"].endswith("/frame.png")
    assert seen["status"] == "Completed"
