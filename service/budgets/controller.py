"""Budget endpoints: the price of a request before submitting it (``/v1/estimate``), a tenant's own usage
(``/v1/usage``), and the operator's view of any tenant's usage and ledger of charges (``/admin``)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from service.budgets.ledger import BudgetLedger
from service.budgets.usage import BudgetReader
from service.jobs.service import JobService
from service.tenants.auth import Principal, requires_admin
from service.tenants.store import TenantStore

AnyRequest = Request[Any, Any, Any]


class EstimateController(Controller):
    path = "/v1"
    tags = ["budgets"]  # noqa: RUF012 - Litestar reads this class attribute

    @post("/estimate/{endpoint_id:path}", status_code=200)
    async def estimate(
        self,
        request: AnyRequest,
        endpoint_id: FromPath[str],
        jobs: NamedDependency[JobService],
        ledger: NamedDependency[BudgetLedger],
        principal: NamedDependency[Principal],
    ) -> dict[str, Any]:
        """Tokens and cost of a request, validated exactly like a submit, without submitting or reserving anything.
        The cost is the amount a submit would reserve (the upper bound; see the README's pricing section)."""
        endpoint = jobs.endpoint(endpoint_id)
        data = jobs.validate(endpoint, await request.body(), webhook_url=None)
        quote = ledger.estimate(data)
        return {
            "endpoint_id": endpoint.id,
            "tokens": quote.tokens,
            "cost_micros": quote.cost_micros,
            "cost_usd": quote.cost_usd,
            "width": quote.width,
            "height": quote.height,
            "frames": quote.frames,
            "audio": quote.audio,
            "resolution": quote.resolution.value,
            "aspect_ratio": quote.aspect_ratio.value,
            "tenant_id": principal.tenant_id,
        }

    @get("/usage")
    async def own_usage(
        self, principal: NamedDependency[Principal], budgets: NamedDependency[BudgetReader]
    ) -> dict[str, Any]:
        """The calling tenant's budget and spend in the current period."""
        return await budgets.usage(principal.tenant)


class BudgetAdminController(Controller):
    path = "/admin/tenants/{tenant_id:str}"
    guards = [requires_admin]  # noqa: RUF012 - Litestar reads this class attribute
    tags = ["admin", "budgets"]  # noqa: RUF012

    @get("/usage")
    async def usage(
        self, tenant_id: FromPath[str], tenants: NamedDependency[TenantStore], budgets: NamedDependency[BudgetReader]
    ) -> dict[str, Any]:
        return await budgets.usage(await tenants.require_tenant(tenant_id))

    @get("/charges")
    async def charges(
        self,
        tenant_id: FromPath[str],
        tenants: NamedDependency[TenantStore],
        budgets: NamedDependency[BudgetReader],
        period: FromQuery[str | None] = None,
        limit: FromQuery[int] = 100,
        before: FromQuery[int | None] = None,
    ) -> dict[str, Any]:
        """Settled charges of a period (default: the current one), newest first, to reconcile with fal's invoice."""
        tenant = await tenants.require_tenant(tenant_id)
        size = max(1, min(limit, 1000))
        entries, cursor, period_id = await budgets.charges(tenant, period_id=period, limit=size, before_ms=before)
        return {"tenant_id": tenant_id, "period_id": period_id, "charges": entries, "next": cursor}
