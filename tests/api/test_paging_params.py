"""Page parameters of every paged route (``limit``, ``before``): a page, or a fal-shaped 4xx naming the parameter;
never a 5xx. Regressions: ``GET /admin/audit?before=null`` was a 503 "state store unavailable" (Redis refused the
cursor), ``GET /admin/tenants/{id}/requests?limit=0`` a 500 (IndexError), and Litestar's own refusals named the
parameter's place ``"ParamType.QUERY"`` instead of fal's ``"query"``."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest

from service import keys
from service.domain.webhooks import delivery_id
from service.webhooks.store import Delivery, DeliveryStore
from tests.support.gateway import Gateway, local

HUGE = str(10**30)
HUGE_DIGITS = "9" * 5000  # past Python's int-from-text limit (4300 digits)
ADMIN_PAGED = [
    "/admin/audit",
    "/admin/tenants/acme/requests",
    "/admin/tenants/acme/charges",
    "/admin/webhooks/deliveries",
]
TENANT_PAGED = ["/v1/webhooks/deliveries"]
EXTREMES = ["null", "abc", "-1", "0", "-0", "1.5", "", HUGE, f"-{HUGE}", HUGE_DIGITS, "1e3", "0x10", "\u0000", "(1"]


def _fal_problems(response: httpx.Response, parameter: str) -> list[str]:
    """What is wrong with the answer to ``?<parameter>=<something odd>``: a 5xx, or a 4xx that is not fal's
    validation shape naming the parameter as ``["query", parameter]``."""
    if response.status_code >= 500:
        return [f"{response.status_code} {response.text[:200]}"]
    body: Any = response.json()
    if response.status_code < 400:
        return []
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, list) or not detail:
        return [f"{response.status_code} not fal's validation shape: {response.text[:200]}"]
    return [
        f"{response.status_code} {error}"
        for error in detail
        if not {"loc", "msg", "type"} <= error.keys() or error["loc"] != ["query", parameter]
    ]


async def _submitted(gateway: Gateway, count: int) -> None:
    for _ in range(count):
        assert (await gateway.submit(tenant="acme")).status_code == 200


@pytest.mark.parametrize("before", ["null", "abc", "-1", "1.5", "1-", "01", str(2**64), f"1-{2**64}", HUGE_DIGITS])
async def test_a_bad_audit_cursor_is_a_422_naming_before_never_a_state_store_outage(
    gateway: Gateway, before: str
) -> None:
    await gateway.auth("acme")  # audit entries exist
    response = await gateway.client.get("/admin/audit", params={"before": before}, headers=gateway.admin)
    assert response.status_code == 422, response.text[:300]
    assert not _fal_problems(response, "before")


@pytest.mark.parametrize("limit", ["0", "-1", f"-{HUGE}"])
async def test_a_limit_below_one_is_a_page_of_one_on_the_clamped_routes(gateway: Gateway, limit: str) -> None:
    await _submitted(gateway, 2)
    requests = await gateway.client.get("/admin/tenants/acme/requests", params={"limit": limit}, headers=gateway.admin)
    assert requests.status_code == 200, requests.text[:300]
    assert len(requests.json()["requests"]) == 1
    assert requests.json()["next"] is not None, "a full page of one: there is an older one"
    audit = await gateway.client.get("/admin/audit", params={"limit": limit}, headers=gateway.admin)
    assert audit.status_code == 200, audit.text[:300]
    assert len(audit.json()["entries"]) == 1
    charges = await gateway.client.get("/admin/tenants/acme/charges", params={"limit": limit}, headers=gateway.admin)
    assert charges.status_code == 200, charges.text[:300]


async def test_a_huge_limit_is_the_largest_page(gateway: Gateway) -> None:
    await _submitted(gateway, 2)
    requests = await gateway.client.get("/admin/tenants/acme/requests", params={"limit": HUGE}, headers=gateway.admin)
    assert requests.status_code == 200, requests.text[:300]
    assert len(requests.json()["requests"]) == 2
    assert requests.json()["next"] is None


async def test_webhook_deliveries_refuse_a_limit_below_one_naming_it(gateway: Gateway) -> None:
    auth = await gateway.auth("acme")
    for path, headers in [("/admin/webhooks/deliveries", gateway.admin), ("/v1/webhooks/deliveries", auth)]:
        response = await gateway.client.get(path, params={"limit": "0"}, headers=headers)
        assert response.status_code == 422, (path, response.text[:300])
        assert not _fal_problems(response, "limit"), path


@pytest.mark.parametrize("parameter", ["limit", "before"])
async def test_a_page_parameter_that_is_no_number_is_a_422_naming_it_as_fal_does(
    gateway: Gateway, parameter: str
) -> None:
    response = await gateway.client.get(
        "/admin/tenants/acme/requests", params={parameter: "abc"}, headers=gateway.admin
    )
    assert response.status_code == 422, response.text[:300]
    assert [e["loc"] for e in response.json()["detail"]] == [["query", parameter]]


@pytest.mark.parametrize("parameter", ["limit", "before"])
async def test_every_paged_route_answers_odd_page_parameters_with_a_page_or_a_fal_shaped_4xx(
    gateway: Gateway, parameter: str
) -> None:
    auth = await gateway.auth("acme")
    await _submitted(gateway, 1)
    problems = []
    for path in [*ADMIN_PAGED, *TENANT_PAGED]:
        headers = auth if path in TENANT_PAGED else gateway.admin
        for value in EXTREMES:
            response = await gateway.client.get(path, params={parameter: value}, headers=headers)
            problems += [f"{path}?{parameter}={value[:12]!r}: {p}" for p in _fal_problems(response, parameter)]
    assert not problems


async def _every_page(gateway: Gateway, path: str, listed: str, headers: dict[str, str], ids: str) -> list[str]:
    """The ``ids`` of every entry of ``path`` followed a page of one at a time (and one page to spare)."""
    seen: list[str] = []
    before: str | None = None
    for _ in range(5):
        params: dict[str, str | int] = {"limit": 1} | ({"before": before} if before else {})
        response = await gateway.client.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text[:300]
        seen += [entry[ids] for entry in response.json()[listed]]
        before = response.json()["next"]
        if before is None:
            break
    return seen


async def test_paging_reaches_every_request_also_those_created_in_the_same_millisecond(gateway: Gateway) -> None:
    await gateway.auth("acme")
    gateway.clock.freeze()
    await _submitted(gateway, 3)
    seen = await _every_page(gateway, "/admin/tenants/acme/requests", "requests", gateway.admin, "request_id")
    assert len(set(seen)) == 3, seen


async def test_paging_reaches_every_charge_also_those_settled_in_the_same_millisecond(gateway: Gateway) -> None:
    await gateway.auth("acme")
    gateway.sim.configure(queue_seconds=0.0, processing_seconds=0.0)  # done at the tracker's first poll
    gateway.clock.freeze()
    submitted = [(await gateway.submit(tenant="acme")).json() for _ in range(3)]
    gateway.clock.advance(3600)  # all three due at once, polled, found done and settled at one frozen instant
    for job in submitted:
        await gateway.wait_status(local(job["status_url"]))
    period = (await gateway.client.get("/admin/tenants/acme/charges", headers=gateway.admin)).json()["period_id"]
    scores = cast(
        "list[tuple[str, float]]",
        await gateway.redis.zrange(keys.charges_index("acme", period), 0, -1, withscores=True),
    )
    assert len({score for _member, score in scores}) == 1, "all three settled in the same millisecond"
    seen = await _every_page(gateway, "/admin/tenants/acme/charges", "charges", gateway.admin, "request_id")
    assert sorted(seen) == sorted(job["request_id"] for job in submitted)


async def _deliveries_at(gateway: Gateway, tenant: str, count: int, at: float) -> list[str]:
    """``count`` deliveries of ``tenant`` created at ``at``, through the gateway's own store, never due."""
    store = DeliveryStore(gateway.redis, retention_seconds=3600)
    made = [
        Delivery(
            id=delivery_id(f"{tenant}-{n}"),
            tenant_id=tenant,
            request_id=f"{tenant}-{n}",
            url="https://hooks.example/x",
            body="{}",
            created_at=at,
            next_at=at + 86_400,
        )
        for n in range(count)
    ]
    for delivery in made:
        assert await store.enqueue(delivery)
    return [delivery.id for delivery in made]


async def test_paging_reaches_every_webhook_delivery_also_those_created_in_the_same_millisecond(
    gateway: Gateway,
) -> None:
    auth = await gateway.auth("acme")
    ids = await _deliveries_at(gateway, "acme", 3, at=1_800_000_000.0)
    other = await _deliveries_at(gateway, "other", 2, at=1_800_000_000.0)
    own = await _every_page(gateway, "/v1/webhooks/deliveries", "deliveries", auth, "id")
    everyone = await _every_page(gateway, "/admin/webhooks/deliveries", "deliveries", gateway.admin, "id")
    assert own == sorted(ids, reverse=True), "ties in the same millisecond come in descending id order"
    assert sorted(everyone) == sorted(ids + other)


async def test_a_bare_millisecond_before_still_means_entries_created_before_it(gateway: Gateway) -> None:
    auth = await gateway.auth("acme")
    older = await _deliveries_at(gateway, "acme", 1, at=1_800_000_000.0)
    await _deliveries_at(gateway, "later", 1, at=1_800_000_000.5)
    page = await gateway.client.get(
        "/admin/webhooks/deliveries", params={"before": "1800000000500"}, headers=gateway.admin
    )
    assert [d["id"] for d in page.json()["deliveries"]] == older
    own = await gateway.client.get("/v1/webhooks/deliveries", params={"before": "1800000000000"}, headers=auth)
    assert own.json() == {"deliveries": [], "next": None}, "strictly before: not the one of that very millisecond"


@pytest.mark.parametrize("before", ["1:", ":x", "1:\u0000", "1 ", "abc:x", f"{10**20}:x"])
async def test_a_malformed_compound_cursor_is_a_422_naming_before(gateway: Gateway, before: str) -> None:
    auth = await gateway.auth("acme")
    for path in [*ADMIN_PAGED[1:], *TENANT_PAGED]:
        headers = auth if path in TENANT_PAGED else gateway.admin
        response = await gateway.client.get(path, params={"before": before}, headers=headers)
        assert response.status_code == 422, (path, response.text[:300])
        assert not _fal_problems(response, "before"), path


async def test_a_cursor_past_many_entries_of_its_millisecond_skips_them_all(gateway: Gateway) -> None:
    """The entries at or above the cursor in its millisecond are read and skipped in growing batches."""
    ids = sorted(await _deliveries_at(gateway, "acme", 6, at=1_800_000_000.0), reverse=True)
    params: dict[str, str | int] = {"tenant": "acme", "limit": 1, "before": f"1800000000000:{ids[-2]}"}
    page = (await gateway.client.get("/admin/webhooks/deliveries", params=params, headers=gateway.admin)).json()
    assert [d["id"] for d in page["deliveries"]] == [ids[-1]]
    assert page["next"] == f"1800000000000:{ids[-1]}", "a full page: the next one (empty) may hold more"
