"""A schemathesis fuzz of every operation in the committed OpenAPI document, with the credentials of its role and
with the other role's (a tenant calling the operator's API, the operator calling a tenant's): no 5xx, errors in
fal's shape, and every answer as the document says (``tests/support/fuzz.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from service.config import Settings
from service.simulator.app import SimulatorConfig, SimulatorState
from tests.support.admin import ADMIN, FAL_KEY, create_tenant, key_auth
from tests.support.endpoints import T2V
from tests.support.fuzz import (
    PROXY_PATH,
    Known,
    Operation,
    Role,
    answer_failures,
    cases,
    describe,
    failures,
    label,
    load_operations,
    request_of,
    role_of,
    submit_bodies,
    takes_request_id,
    wants_submit_body,
)
from tests.support.gateway import Gateway, local, running_gateway

OPERATIONS = load_operations()
EXAMPLES = 15  # per operation: deterministic (derandomized); raise locally for a deeper pass
CROSS_EXAMPLES = 3  # per operation called with the other role's credentials: refused alike, fewer needed
TENANT = "fuzz"
# Limits high enough that the fuzz reaches the code behind admission rather than a 429 at every turn.
POLICY = {"requests_per_minute": 1_000_000, "max_concurrent": 1_000_000}


@dataclass
class Fuzzed:
    gateway: Gateway
    known: Known
    key: str


@pytest.fixture
async def fuzzed(redis_client: Redis, settings: Settings, operation: Operation) -> AsyncIterator[Fuzzed]:
    """A gateway whose simulator answers at once, with one tenant, its key and, where ``operation`` takes a request
    id, one completed request."""
    sim = SimulatorState(SimulatorConfig(queue_seconds=0.0, processing_seconds=0.01, log_lines=1, fal_key=FAL_KEY))
    async with running_gateway(redis_client, sim, settings) as gateway:
        await create_tenant(gateway.client, TENANT, policy=POLICY)
        issued = (await gateway.client.post(f"/admin/tenants/{TENANT}/keys", headers=ADMIN)).json()
        gateway.keys[TENANT] = issued["key"]
        request_id = "no-request"
        if takes_request_id(operation):
            submitted = (await gateway.submit(T2V, tenant=TENANT)).json()
            await gateway.wait_status(local(submitted["status_url"]), tenant=TENANT)
            request_id = submitted["request_id"]
        known = Known(tenant_id=TENANT, key_id=issued["key_id"], request_id=request_id, app="fal-ai/bytedance")
        yield Fuzzed(gateway=gateway, known=known, key=issued["key"])


def _headers(role: Role, key: str) -> dict[str, str]:
    return {Role.ADMIN: ADMIN, Role.TENANT: key_auth(key), Role.PUBLIC: {}}[role]


OTHER_ROLE = {Role.ADMIN: Role.TENANT, Role.TENANT: Role.ADMIN}
# The server proxy refuses a target it does not serve before any key is looked at (docs/protocol.md §8).
CROSS_OPERATIONS = [op for op in OPERATIONS if role_of(op) in OTHER_ROLE and not op.path.startswith(PROXY_PATH)]
REFUSED = frozenset({401, 429})  # the wrong credentials; or, after many of them, the source's auth failure limit
FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)


async def _fuzz_once(fuzzed: Fuzzed, operation: Operation, role: Role, data: st.DataObject) -> httpx.Response:
    case = data.draw(cases(operation, headers=_headers(role, fuzzed.key), known=fuzzed.known), label="case")
    body = None
    if wants_submit_body(operation) and data.draw(st.booleans(), label="own body"):
        body = data.draw(submit_bodies(), label="body")
    request = request_of(fuzzed.gateway.client, case, body)
    response = await fuzzed.gateway.client.send(request)
    problems = failures(case, response)
    assert not problems, f"{', '.join(problems)}: {describe(request, response)}"
    return response


@pytest.mark.parametrize("operation", OPERATIONS, ids=label)
@settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
@given(data=st.data())
async def test_no_operation_answers_a_5xx_or_an_error_outside_fal_shape_or_the_document(
    fuzzed: Fuzzed, operation: Operation, data: st.DataObject
) -> None:
    await _fuzz_once(fuzzed, operation, role_of(operation), data)


@pytest.mark.parametrize("operation", CROSS_OPERATIONS, ids=label)
@settings(FUZZ_SETTINGS, max_examples=CROSS_EXAMPLES)
@given(data=st.data())
async def test_the_other_roles_credentials_are_refused_as_documented(
    fuzzed: Fuzzed, operation: Operation, data: st.DataObject
) -> None:
    response = await _fuzz_once(fuzzed, operation, OTHER_ROLE[role_of(operation)], data)
    assert response.status_code in REFUSED, response.text


# --- regressions: what the fuzz found, and the values it is unlikely to draw ----------------------------------------

HUGE_DIGITS = "9" * 5000  # past Python's int-from-text limit (4300 digits) as well as every 64-bit range
BAD_AUDIT_CURSORS = [
    *["null", ":", "abc", "1-", "-1", "1.5", "+1", " 1", "01", "1-2-3", "1-*", "(1", "+", "-"],
    *[str(2**64), f"1-{2**64}", "0" * 200 + "1", HUGE_DIGITS],
]


async def test_a_bad_audit_cursor_is_a_422_naming_before_not_a_state_store_outage(gateway: Gateway) -> None:
    await create_tenant(gateway.client, "acme")
    for before in BAD_AUDIT_CURSORS:
        response = await gateway.client.get("/admin/audit", params={"before": before}, headers=gateway.admin)
        assert response.status_code == 422, (before, response.text)
        assert [e["loc"] for e in response.json()["detail"]] == [["query", "before"]], before


async def test_every_audit_cursor_the_log_hands_out_or_could_pages_without_error(gateway: Gateway) -> None:
    for tenant in ("a", "b", "c"):
        await create_tenant(gateway.client, tenant)
    first = (await gateway.client.get("/admin/audit", params={"limit": 2}, headers=gateway.admin)).json()
    assert [e["target"] for e in first["entries"]] == ["c", "b"]
    rest = await gateway.client.get("/admin/audit", params={"before": first["next"]}, headers=gateway.admin)
    assert [e["target"] for e in rest.json()["entries"]] == ["a"]
    everything = ["c", "b", "a"]
    for before, targets in [("0-0", []), ("0", []), (f"{2**64 - 1}-{2**64 - 1}", everything), ("", everything)]:
        page = await gateway.client.get("/admin/audit", params={"before": before}, headers=gateway.admin)
        assert page.status_code == 200, (before, page.text)
        assert [e["target"] for e in page.json()["entries"]] == targets, before


async def test_a_request_history_page_of_limit_zero_or_less_is_a_page_of_one_not_a_500(gateway: Gateway) -> None:
    for _ in range(2):
        assert (await gateway.submit(tenant="acme")).status_code == 200
    for limit in (0, -1, -(10**30)):
        response = await gateway.client.get(
            "/admin/tenants/acme/requests", params={"limit": limit}, headers=gateway.admin
        )
        assert response.status_code == 200, (limit, response.text)
        assert len(response.json()["requests"]) == 1, limit


PAGED = [
    "/admin/audit",
    "/admin/tenants/acme/requests",
    "/admin/tenants/acme/charges",
    "/admin/webhooks/deliveries",
    "/v1/webhooks/deliveries",
]
EXTREME_VALUES = [str(10**30), str(-(10**30)), HUGE_DIGITS, "1e3", "nan", "0x10", "", "\u0000"]


async def test_extreme_page_parameters_are_a_page_or_a_4xx_in_fal_shape(gateway: Gateway) -> None:
    auth = await gateway.auth("acme")
    problems = []
    for path in PAGED:
        for name in ("limit", "before", "period"):
            for value in EXTREME_VALUES:
                headers = auth if path.startswith("/v1/") else gateway.admin
                response = await gateway.client.get(path, params={name: value}, headers=headers)
                problems += [f"{path}?{name}={value[:20]}: {p}" for p in answer_failures(response)]
    assert not problems


MALFORMED_IDS = ["%00", "%ff", "..", "%2e%2e", "a" * 5000, "%F0%9F%92%A9", "x%20y", "%0d%0aSet-Cookie:%20a=b", "{}"]
ID_ROUTES = [
    ("GET", "/admin/tenants/{}"),
    ("PATCH", "/admin/tenants/{}"),
    ("GET", "/admin/tenants/{}/requests"),
    ("GET", "/admin/tenants/{}/charges"),
    ("POST", "/admin/tenants/{}/keys"),
    ("DELETE", "/admin/tenants/acme/keys/{}"),
    ("POST", "/admin/tenants/acme/keys/{}/rotate"),
    ("GET", "/admin/requests/{}"),
    ("GET", "/admin/webhooks/deliveries/{}"),
    ("DELETE", "/admin/cache/entries/{}"),
    ("DELETE", "/admin/cache/namespaces/{}"),
    ("GET", "/queue/fal-ai/bytedance/requests/{}"),
    ("GET", "/queue/fal-ai/bytedance/requests/{}/status"),
    ("PUT", "/queue/fal-ai/bytedance/requests/{}/cancel"),
    ("POST", "/queue/{}"),
    ("POST", "/v1/estimate/{}"),
    ("GET", "/v1/webhooks/deliveries/{}"),
]


async def test_a_malformed_path_id_is_answered_in_fal_shape_never_a_5xx(gateway: Gateway) -> None:
    auth = await gateway.auth("acme")
    problems = []
    for method, template in ID_ROUTES:
        for raw_id in MALFORMED_IDS:
            headers = gateway.admin if template.startswith("/admin/") else auth
            path = template.format(raw_id)
            response = await gateway.client.request(method, path, headers=headers, json={"prompt": "x"})
            problems += [f"{method} {path[:80]}: {p}" for p in answer_failures(response)]
    assert not problems
