"""fal's queue API as the bench calls it, directly on the simulator or through the gateway's ``/queue`` prefix, plus
the simulator's ``/_sim`` control API and the wait for the gateway's tracker to go idle."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.processes import SIM_KEY, Stack
from service.keys import tracker_due

ENDPOINT = "fal-ai/bytedance/seedance/v1.5/pro/text-to-video"
APP = "fal-ai/bytedance"  # request URLs use only owner/alias (docs/protocol.md §1.3)
UNSEEDED: dict[str, Any] = {"prompt": "bench", "resolution": "480p", "duration": "5"}
SEEDED: dict[str, Any] = {**UNSEEDED, "seed": 424242}


def body_text(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Target:
    """Where queue calls go: ``direct`` (the simulator, fal's URL scheme) or ``gateway`` (its ``/queue`` prefix)."""

    name: str
    base_url: str
    prefix: str
    auth: str

    @property
    def submit_path(self) -> str:
        return f"{self.prefix}/{ENDPOINT}"

    def status_path(self, request_id: str) -> str:
        return f"{self.prefix}/{APP}/requests/{request_id}/status"

    def result_path(self, request_id: str) -> str:
        return f"{self.prefix}/{APP}/requests/{request_id}"

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": self.auth}, timeout=timeout)

    def async_client(self, timeout: float = 60.0, connections: int = 64) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": self.auth}, timeout=timeout, limits=limits
        )

    def submit(self, client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
        response = client.post(self.submit_path, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{self.name} submit failed: {response.status_code} {response.text[:500]}")
        return response

    def completed_job(self, client: httpx.Client, body: dict[str, Any], timeout: float = 60.0) -> str:
        """Submit ``body`` and wait until the job is COMPLETED; returns its request id."""
        request_id: str = self.submit(client, body).json()["request_id"]
        self.wait_completed(client, [request_id], timeout)
        return request_id

    def wait_completed(self, client: httpx.Client, request_ids: list[str], timeout: float) -> tuple[bool, int]:
        """Poll until every job is COMPLETED (True) or ``timeout`` passes (False); also returns the polls made."""
        pending, polls = list(request_ids), 0
        deadline = time.monotonic() + timeout
        while True:
            polls += len(pending)
            pending = self.still_running(client, pending)
            if not pending or time.monotonic() >= deadline:
                return not pending, polls
            time.sleep(0.1)

    def still_running(self, client: httpx.Client, request_ids: list[str]) -> list[str]:
        """One status call per job; the ids of those not COMPLETED yet."""
        return [request_id for request_id in request_ids if self.status(client, request_id) != "COMPLETED"]

    def status(self, client: httpx.Client, request_id: str) -> str:
        response = client.get(self.status_path(request_id))
        if response.status_code not in {200, 202}:
            raise RuntimeError(f"{self.name} status failed: {response.status_code} {response.text[:500]}")
        status: str = response.json()["status"]
        return status


def targets(stack: Stack) -> tuple[Target, Target]:
    direct = Target("direct", stack.sim_url, "", f"Key {SIM_KEY}")
    gateway = Target("gateway", stack.gw_url, "/queue", f"Key {stack.tenant_key}")
    return direct, gateway


class SimControl:
    """The simulator's unauthenticated control API."""

    def __init__(self, sim_url: str) -> None:
        self._http = httpx.Client(base_url=f"{sim_url}/_sim", timeout=60)

    def reset(self, **config: Any) -> None:
        """Forget jobs, faults and statistics (back to the start-up config), then apply ``config``."""
        self._http.post("/reset").raise_for_status()
        if config:
            self.configure(**config)

    def configure(self, **config: Any) -> None:
        response = self._http.post("/config", json=config)
        if response.status_code != 200:
            raise RuntimeError(f"simulator config refused: {response.text}")

    def stats(self) -> dict[str, Any]:
        response = self._http.get("/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def close(self) -> None:
        self._http.close()


def tracker_backlog(stack: Stack) -> int:
    """Jobs the gateway's tracker still has to follow (its due set: every job until its completion is done)."""
    client = stack.redis()
    try:
        return int(client.zcard(tracker_due()))
    finally:
        client.close()


def drain(stack: Stack, timeout: float = 180.0) -> float:
    """Wait until the gateway's tracker has finished every job (bounded); returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout and tracker_backlog(stack) > 0:
        time.sleep(0.25)
    return round(time.monotonic() - start, 2)
