"""Two answers fixed in review: a ``/run`` that outlives the run timeout is fal's 504, and request history pages
carry a cursor whenever a page is full, whatever ``limit`` the caller asked for."""

from __future__ import annotations

import pytest

from service.config import Settings
from service.jobs import history
from tests.support.endpoints import T2V, T2V_INPUT
from tests.support.gateway import Gateway, fast_settings


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return fast_settings(redis_url, run_timeout_seconds=0.2)


async def test_a_run_past_its_timeout_is_a_504_and_the_job_stays_tracked(gateway: Gateway) -> None:
    gateway.sim.configure(queue_seconds=30)
    response = await gateway.client.post(f"/run/{T2V}", json=T2V_INPUT, headers=await gateway.auth())
    assert response.status_code == 504
    assert response.json() == {
        "detail": "The request did not complete within the gateway's run timeout; it is still tracked and its result "
        "can be fetched from the queue API",
        "error_type": "request_timeout",
    }
    assert response.headers["x-fal-error-type"] == "request_timeout"
    assert response.headers["x-fal-request-timeout-type"] == "user", "the job goes on: a re-send would pay twice"
    request_id = response.headers["x-fal-request-id"]
    status = await gateway.client.get(
        f"/queue/fal-ai/bytedance/requests/{request_id}/status", headers=await gateway.auth()
    )
    assert status.status_code == 202
    assert status.json()["status"] == "IN_QUEUE"


@pytest.mark.parametrize(("limit", "page"), [(0, 1), (3, 3), (6, 5), (10_000, 5)])
async def test_a_full_page_has_a_cursor_for_any_limit(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, limit: int, page: int
) -> None:
    monkeypatch.setattr(history, "MAX_PAGE", 5)  # the clamp, at a size a test can fill quickly
    for _ in range(page + 1):
        assert (await gateway.submit()).status_code == 200
    first = await gateway.client.get("/admin/tenants/acme/requests", params={"limit": limit}, headers=gateway.admin)
    assert first.status_code == 200
    assert len(first.json()["requests"]) == page
    assert first.json()["next"] is not None, "a full page says where the next one starts"
    rest = await gateway.client.get(
        "/admin/tenants/acme/requests",
        params={"limit": limit, "before": first.json()["next"]},
        headers=gateway.admin,
    )
    assert len(rest.json()["requests"]) == 1


async def test_an_empty_history_is_an_empty_page(gateway: Gateway) -> None:
    await gateway.auth()
    page = await gateway.client.get("/admin/tenants/acme/requests", params={"limit": 0}, headers=gateway.admin)
    assert page.status_code == 200
    assert page.json() == {"requests": [], "next": None}
