"""A typed provider per collaborator in the container, and the app-level dependency map built from them.

Handlers declare a collaborator by name and type (``queries: NamedDependency[JobQueries]``); the name is the
:class:`~service.container.Deps` field, and ``provide_<name>`` reads it from the app state. Nothing else reads
``app.state``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from redis.asyncio import Redis

from service.audit import AuditLog
from service.budgets.ledger import BudgetLedger
from service.budgets.usage import BudgetReader
from service.cache.store import ResultCache
from service.container import Deps
from service.jobs.api import Call
from service.jobs.cancel import Cancellation
from service.jobs.fal_webhooks import FalWebhookReceiver
from service.jobs.queries import JobQueries
from service.jobs.store import JobStore
from service.jobs.submit import SubmitPipeline
from service.storage.service import Uploads
from service.tenants.admission import Admission
from service.tenants.auth import Authenticator, authenticate_request
from service.tenants.store import TenantStore
from service.webhooks.secrets import TenantSecrets
from service.webhooks.signing import SigningKeys
from service.webhooks.store import DeliveryStore


def deps_of(state: State) -> Deps:
    deps: Deps = state.deps
    return deps


def provide_redis(state: State) -> Redis:
    return deps_of(state).redis


def provide_tenants(state: State) -> TenantStore:
    return deps_of(state).tenants


def provide_authenticator(state: State) -> Authenticator:
    return deps_of(state).authenticator


def provide_admission(state: State) -> Admission:
    return deps_of(state).admission


def provide_audit(state: State) -> AuditLog:
    return deps_of(state).audit


def provide_ledger(state: State) -> BudgetLedger:
    return deps_of(state).ledger


def provide_budgets(state: State) -> BudgetReader:
    return deps_of(state).budgets


def provide_result_cache(state: State) -> ResultCache:
    return deps_of(state).result_cache


def provide_job_store(state: State) -> JobStore:
    return deps_of(state).job_store


def provide_submits(state: State) -> SubmitPipeline:
    return deps_of(state).submits


def provide_queries(state: State) -> JobQueries:
    return deps_of(state).queries


def provide_cancellation(state: State) -> Cancellation:
    return deps_of(state).cancellation


def provide_signing_keys(state: State) -> SigningKeys:
    return deps_of(state).signing_keys


def provide_webhook_secrets(state: State) -> TenantSecrets:
    return deps_of(state).webhook_secrets


def provide_deliveries(state: State) -> DeliveryStore:
    return deps_of(state).deliveries


def provide_fal_webhooks(state: State) -> FalWebhookReceiver:
    return deps_of(state).fal_webhooks


def provide_uploads(state: State) -> Uploads:
    return deps_of(state).uploads


async def provide_call(request: Request[Any, Any, Any], state: State) -> Call:
    """The one dependency of the job routes (``service/jobs/api.py``): the caller authenticated, and the routes'
    collaborators."""
    api = deps_of(state).job_api
    return Call(await authenticate_request(request, api.authenticator), api)


def dependencies() -> dict[str, Provide]:
    """The app-level providers of everything in the container, by the name handlers declare."""
    providers: dict[str, Callable[[State], object]] = {
        "redis": provide_redis,
        "tenants": provide_tenants,
        "authenticator": provide_authenticator,
        "admission": provide_admission,
        "audit": provide_audit,
        "ledger": provide_ledger,
        "budgets": provide_budgets,
        "result_cache": provide_result_cache,
        "job_store": provide_job_store,
        "submits": provide_submits,
        "queries": provide_queries,
        "cancellation": provide_cancellation,
        "signing_keys": provide_signing_keys,
        "webhook_secrets": provide_webhook_secrets,
        "deliveries": provide_deliveries,
        "fal_webhooks": provide_fal_webhooks,
        "uploads": provide_uploads,
    }
    return {
        **{name: Provide(provider, sync_to_thread=False) for name, provider in providers.items()},
        "call": Provide(provide_call),
    }
