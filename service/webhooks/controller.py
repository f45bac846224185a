"""Webhook routes: the public signing keys (JWKS), a tenant's secret and delivery log, and the operator's log and
replays (docs/webhooks.md)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from service.audit import Actor, AuditLog, actor_of
from service.config import Settings
from service.domain.paging import Cursor, parse_cursor
from service.domain.tenants import iso
from service.domain.webhooks import DeliveryState, delivery_id
from service.errors import InvalidRequest, NotFound
from service.paging import Before, before_cursor
from service.tenants.auth import Principal, requires_admin
from service.tenants.store import TenantStore
from service.webhooks.schemas import DeliveryDetail, DeliveryOut, DeliveryPage, RedeliverOut, RedeliverSince, SecretOut
from service.webhooks.secrets import TenantSecrets
from service.webhooks.signing import SigningKeys
from service.webhooks.store import MAX_PAGE, Delivery, DeliveryStore

AnyRequest = Request[Any, Any, Any]
# ``state`` is a reserved parameter name in Litestar, so the handler argument is renamed; the query stays ``state``.
StateFilter = Annotated[DeliveryState | None, QueryParameter(name="state", description="pending, delivered or failed")]


@get("/.well-known/jwks.json", tags=["webhooks"])
async def jwks(signing_keys: NamedDependency[SigningKeys]) -> dict[str, Any]:
    """The public keys fal-style webhook signatures verify against (no key needed, like fal's own JWKS)."""
    await signing_keys.ready()
    return signing_keys.jwks()


class TenantWebhookController(Controller):
    path = "/v1"
    tags = ["webhooks"]  # noqa: RUF012 - Litestar reads this class attribute

    @post("/webhook-secret", status_code=200)
    async def rotate_secret(
        self,
        principal: NamedDependency[Principal],
        webhook_secrets: NamedDependency[TenantSecrets],
        settings: NamedDependency[Settings],
    ) -> SecretOut:
        """A new Standard Webhooks secret, shown once; the previous one keeps signing during the grace period."""
        secret = await webhook_secrets.rotate(principal.tenant_id)
        return _secret_out(secret, webhook_secrets, settings)

    @get("/webhooks/deliveries")
    async def own_deliveries(
        self,
        principal: NamedDependency[Principal],
        deliveries: NamedDependency[DeliveryStore],
        request_id: FromQuery[str | None] = None,
        delivery_state: StateFilter = None,
        limit: FromQuery[int] = 50,
        before: Before = None,
    ) -> DeliveryPage:
        """The calling tenant's webhook deliveries, newest first."""
        return await _page(deliveries, principal.tenant_id, request_id, delivery_state, limit, before, principal)

    @get("/webhooks/deliveries/{delivery:str}")
    async def own_delivery(
        self, delivery: FromPath[str], principal: NamedDependency[Principal], deliveries: NamedDependency[DeliveryStore]
    ) -> DeliveryDetail:
        found = await deliveries.get(delivery, with_history=True)
        if found is None or not _owned(found, principal):
            raise NotFound("Delivery not found", error_type="delivery_not_found")
        return DeliveryDetail.detail(found)


class WebhookAdminController(Controller):
    path = "/admin"
    guards = [requires_admin]  # noqa: RUF012 - Litestar reads this class attribute
    tags = ["admin", "webhooks"]  # noqa: RUF012

    @get("/webhooks/deliveries")
    async def deliveries_log(
        self,
        deliveries: NamedDependency[DeliveryStore],
        tenant: FromQuery[str | None] = None,
        request_id: FromQuery[str | None] = None,
        delivery_state: StateFilter = None,
        limit: FromQuery[int] = 50,
        before: Before = None,
    ) -> DeliveryPage:
        """Every delivery (or one tenant's), newest first, filtered by request id and state."""
        return await _page(deliveries, tenant, request_id, delivery_state, limit, before)

    @get("/webhooks/deliveries/{delivery:str}")
    async def show_delivery(
        self, delivery: FromPath[str], deliveries: NamedDependency[DeliveryStore]
    ) -> DeliveryDetail:
        """One delivery with every attempt: time, status code, latency and error."""
        return DeliveryDetail.detail(await _require(deliveries, delivery, with_history=True))

    @post("/webhooks/deliveries/{delivery:str}/redeliver", status_code=202)
    async def redeliver(
        self,
        request: AnyRequest,
        delivery: FromPath[str],
        deliveries: NamedDependency[DeliveryStore],
        audit: NamedDependency[AuditLog],
        settings: NamedDependency[Settings],
    ) -> DeliveryOut:
        """Queue the delivery again now, with the same webhook-id (receivers deduplicate on it)."""
        await _require(deliveries, delivery)
        queued = await deliveries.redeliver(delivery)
        assert queued is not None  # it existed a moment ago; records outlive their log entries
        await audit.record(_actor(request, settings), "webhook.redeliver", delivery)
        return DeliveryOut.of(queued)

    @post("/tenants/{tenant_id:str}/webhooks/redeliver", status_code=202)
    async def redeliver_failed(
        self,
        request: AnyRequest,
        tenant_id: FromPath[str],
        data: JSONBody[RedeliverSince],
        tenants: NamedDependency[TenantStore],
        deliveries: NamedDependency[DeliveryStore],
        audit: NamedDependency[AuditLog],
        settings: NamedDependency[Settings],
    ) -> RedeliverOut:
        """Replay every failed delivery of the tenant created since ``since``."""
        await tenants.require_tenant(tenant_id)
        since = data.since.timestamp()
        replayed: list[str] = []
        cursor: Cursor | None = None
        while True:
            page, next_cursor = await deliveries.page(tenant_id=tenant_id, limit=MAX_PAGE, before=cursor)
            for found in page:
                if found.created_at >= since and found.state is DeliveryState.FAILED:
                    await deliveries.redeliver(found.id)
                    replayed.append(found.id)
            cursor = parse_cursor(next_cursor or "")  # None after the last page
            if cursor is None or (page and page[-1].created_at < since):
                break
        await audit.record(
            _actor(request, settings),
            "webhook.redeliver_failed",
            tenant_id,
            {"since": iso(since), "count": len(replayed)},
        )
        return RedeliverOut(redelivered=replayed)

    @post("/tenants/{tenant_id:str}/webhook-secret", status_code=200)
    async def rotate_tenant_secret(
        self,
        request: AnyRequest,
        tenant_id: FromPath[str],
        tenants: NamedDependency[TenantStore],
        webhook_secrets: NamedDependency[TenantSecrets],
        audit: NamedDependency[AuditLog],
        settings: NamedDependency[Settings],
    ) -> SecretOut:
        """Rotate a tenant's Standard Webhooks secret for it (the new secret is shown once, here)."""
        await tenants.require_tenant(tenant_id)
        secret = await webhook_secrets.rotate(tenant_id)
        await audit.record(_actor(request, settings), "webhook.secret_rotate", tenant_id)
        return _secret_out(secret, webhook_secrets, settings)


def _owned(delivery: Delivery, principal: Principal) -> bool:
    """The caller's delivery: its tenant's, and not one of a deleted tenant of the same id (another uid)."""
    return delivery.tenant_id == principal.tenant_id and delivery.tenant_uid in {None, principal.tenant.uid}


async def _page(
    deliveries: DeliveryStore,
    tenant_id: str | None,
    request_id: str | None,
    state: DeliveryState | None,
    limit: int,
    before: str | None,
    owner: Principal | None = None,
) -> DeliveryPage:
    """A page of deliveries: all (the operator's), or one tenant's, and only ``owner``'s own when a tenant asks."""
    if limit < 1:
        raise InvalidRequest([{"type": "greater_than", "loc": ["query", "limit"], "msg": "limit must be at least 1"}])
    after = before_cursor(before)

    def shown(found: Delivery) -> bool:
        return (state is None or found.state is state) and (owner is None or _owned(found, owner))

    if request_id is not None:  # one delivery per request: look it up directly
        found = await deliveries.get(delivery_id(request_id))
        matches = found is not None and (tenant_id is None or found.tenant_id == tenant_id)
        chosen = [found] if found is not None and matches and shown(found) else []
        return DeliveryPage(deliveries=[DeliveryOut.of(d) for d in chosen], next=None)
    page, cursor = await deliveries.page(tenant_id=tenant_id, limit=limit, before=after)
    return DeliveryPage(deliveries=[DeliveryOut.of(d) for d in page if shown(d)], next=cursor)


async def _require(deliveries: DeliveryStore, delivery: str, *, with_history: bool = False) -> Delivery:
    found = await deliveries.get(delivery, with_history=with_history)
    if found is None:
        raise NotFound("Delivery not found", error_type="delivery_not_found")
    return found


def _secret_out(secret: str, webhook_secrets: TenantSecrets, settings: Settings) -> SecretOut:
    until = webhook_secrets.now() + settings.webhook_secret_grace_seconds
    return SecretOut(secret=secret, previous_valid_until=iso(until) if settings.webhook_secret_grace_seconds else None)


def _actor(request: AnyRequest, settings: Settings) -> Actor:
    return actor_of(request, trusted_proxy_hops=settings.trusted_proxy_hops)
