"""Budget endpoints: a tenant's own usage (``/v1/usage``), and the operator's view of any tenant's usage and ledger
of charges (``/admin``). The price of a request before submitting it is ``/v1/estimate`` (``service/jobs``)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from service.budgets.usage import BudgetReader
from service.paging import Before, before_cursor
from service.tenants.auth import Principal, requires_admin
from service.tenants.store import TenantStore


class UsageController(Controller):
    path = "/v1"
    tags = ["budgets"]  # noqa: RUF012 - Litestar reads this class attribute

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
        before: Before = None,
    ) -> dict[str, Any]:
        """Settled charges of a period (default: the current one), newest first, to reconcile with fal's invoice."""
        tenant = await tenants.require_tenant(tenant_id)
        size = max(1, min(limit, 1000))
        entries, cursor, period_id = await budgets.charges(
            tenant, period_id=period, limit=size, before=before_cursor(before)
        )
        return {"tenant_id": tenant_id, "period_id": period_id, "charges": entries, "next": cursor}
