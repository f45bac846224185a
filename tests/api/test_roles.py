"""Process roles: `serve` refuses to run without a fal key unless the simulator is chosen, and the worker role runs
the tracker without exposing tenant routes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from service.app import create_app
from service.config import Settings
from service.simulator.state import SimulatorState
from tests.support.admin import key_auth, tenant_key
from tests.support.endpoints import T2V
from tests.support.gateway import Gateway, local, serve_in_process, simulator_transport
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "service", "serve", *args],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_serve_refuses_to_start_without_a_fal_key(redis_url: str) -> None:
    done = _serve({"GATEWAY_REDIS_URL": redis_url})
    assert done.returncode == 2
    assert "GATEWAY_FAL_KEY is required" in done.stderr
    assert "--simulator" in done.stderr


def test_serve_refuses_to_start_without_redis() -> None:
    done = _serve({"GATEWAY_FAL_KEY": "k"})
    assert done.returncode == 2
    assert "GATEWAY_REDIS_URL is required" in done.stderr


def test_invalid_settings_are_reported_not_raised(redis_url: str) -> None:
    done = _serve({"GATEWAY_REDIS_URL": redis_url, "GATEWAY_FAL_KEY": "k", "GATEWAY_TLS_CERT_FILE": "/x.pem"})
    assert done.returncode == 2
    assert "must be set together" in done.stderr


@pytest.mark.parametrize("path", [f"/queue/{T2V}", f"/run/{T2V}", "/admin/tenants"])
async def test_worker_role_serves_no_tenant_or_admin_routes(gateway: Gateway, settings: Settings, path: str) -> None:
    worker = create_app(
        settings,
        redis=gateway.redis,
        serve_api=False,
        upstream_transport=simulator_transport(gateway.sim),
    )
    async with serve_in_process(worker) as client:
        refused = await client.post(path, json={"prompt": "x"})
        assert (refused.status_code, refused.json()["error_type"]) == (404, "not_found"), "the route does not exist"
        assert (await client.get("/readyz")).status_code == 200


async def test_a_separate_worker_completes_jobs_an_api_only_replica_accepted(
    redis_client: Redis, sim: SimulatorState, settings: Settings
) -> None:
    transport = simulator_transport(sim)
    api_only = create_app(
        settings.model_copy(update={"tracker_enabled": False}), redis=redis_client, upstream_transport=transport
    )
    worker = create_app(settings, redis=redis_client, serve_api=False, upstream_transport=transport)
    async with serve_in_process(api_only) as api:
        headers = key_auth(await tenant_key(api))
        submitted = (await api.post(f"/queue/{T2V}", json={"prompt": "x"}, headers=headers)).json()
        status_path = local(submitted["status_url"])

        async def completed() -> bool:
            return bool((await api.get(status_path, headers=headers)).json()["status"] == "COMPLETED")

        sim.configure(processing_seconds=0.0, queue_seconds=0.0)
        await eventually(lambda: _upstream_done(sim))
        assert not await completed(), "without a tracker, nothing follows the job"
        async with serve_in_process(worker):
            await eventually(completed)


async def _upstream_done(sim: SimulatorState) -> bool:
    return all(r["state"] == "COMPLETED" for r in sim.stats()["requests"].values())
