"""The dependency container: every collaborator the app builds in its lifespan (``service/providers.py`` hands
them to handlers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from service.audit import AuditLog
from service.background import Survivor
from service.budgets.ledger import BudgetLedger, ProbeMode
from service.budgets.media import MediaProbe
from service.budgets.reconciler import Reconciler
from service.budgets.usage import BudgetReader
from service.cache.images import ImageHasher
from service.cache.service import CacheService
from service.cache.store import ResultCache
from service.clients import Clients
from service.config import Settings
from service.domain.pricing import PriceTable
from service.domain.webhooks import parse_schedule
from service.drain import Drain
from service.events import EventBus, JobChannels
from service.jobs.api import JobApi
from service.jobs.cancel import Cancellation
from service.jobs.completion import Completion, CompletionHook
from service.jobs.events import JobEvents
from service.jobs.fal_webhooks import FalWebhookReceiver
from service.jobs.followers import Followers
from service.jobs.handover import RunHandovers
from service.jobs.idempotency import IdempotencyKeys
from service.jobs.queries import JobQueries
from service.jobs.recording import UpstreamRecorder
from service.jobs.store import DueSchedule, JobStore
from service.jobs.submit import SubmitPipeline
from service.jobs.tracker import JobTracker
from service.metrics import Metrics
from service.netguard import GuardedClient
from service.storage.service import Uploads, build_uploads
from service.tenants.admission import Admission
from service.tenants.auth import Authenticator
from service.tenants.store import TenantStore
from service.upstream.fal import FalClient
from service.upstream.sandbox import fal_client
from service.webhooks.falverify import FalJwks
from service.webhooks.hook import WebhookHook
from service.webhooks.secrets import TenantSecrets
from service.webhooks.sender import WebhookSender
from service.webhooks.signing import SigningKeys
from service.webhooks.store import DeliveryStore
from service.webhooks.worker import DeliveryWorker

STREAM_END_MARGIN_SECONDS = 0.05  # the streams' wake-up comes just after their grace period, never just before


@dataclass(frozen=True, slots=True)
class Deps:
    redis: Redis
    bus: EventBus
    tenants: TenantStore
    authenticator: Authenticator
    admission: Admission
    audit: AuditLog
    ledger: BudgetLedger
    budgets: BudgetReader
    result_cache: ResultCache
    reconciler: Reconciler
    job_store: JobStore
    due: DueSchedule
    completion: Completion
    submits: SubmitPipeline
    queries: JobQueries
    cancellation: Cancellation
    tracker: JobTracker
    signing_keys: SigningKeys
    webhook_secrets: TenantSecrets
    deliveries: DeliveryStore
    delivery_worker: DeliveryWorker
    fal_webhooks: FalWebhookReceiver
    recorder: UpstreamRecorder
    job_api: JobApi
    drain: Drain
    uploads: Uploads


def build_deps(  # noqa: PLR0913 - the container's inputs, all explicit
    settings: Settings,
    clients: Clients,
    *,
    metrics: Metrics,
    clock: Callable[[], float] = time.time,
    hooks: tuple[CompletionHook, ...] = (),
    drain: Drain | None = None,
) -> Deps:
    r = clients.redis
    drain = Drain() if drain is None else drain
    deliveries = DeliveryStore(
        r, retention_seconds=settings.webhook_retention_seconds, shards=settings.shards, clock=clock
    )
    hooks = (WebhookHook(deliveries, clock=clock), *hooks)
    fal = fal_client(settings, clients.fal, metrics, factory=FalClient)  # a name tests may replace
    sandbox = clients.sandbox  # sandbox tenants' upstream: out of fal's metrics and breakers (a registry of its own)
    sandbox_fal = None if sandbox is None else fal_client(settings, sandbox.fal, Metrics())
    bus = EventBus(r, sharded=settings.redis_cluster, on_error=Survivor("event_bus", metrics).survived)
    channels = JobChannels.of(settings.shards)
    store = JobStore(r, retention_seconds=settings.job_retention_seconds, channels=channels, bus=bus)
    due = DueSchedule(r, shards=settings.shards)
    admission = Admission(r, lease_seconds=settings.concurrency_lease_seconds, clock=clock)
    tenants = TenantStore(r, bus, clock=clock)
    ledger = _ledger(settings, clients, metrics, clock)
    budgets = BudgetReader(r, metrics=metrics, clock=clock)
    result_cache = ResultCache(r)
    tenants.forget_with(deliveries.forget_tenant)  # a tenant created again under a deleted one's id starts afresh
    tenants.forget_with(result_cache.purge_tenant)
    tenants.forget_with(ledger.forget_tenant)
    cache = CacheService(
        result_cache,
        hasher=_hasher(settings, clients.images),
        sandbox_hasher=None if sandbox is None else _hasher(settings, sandbox.images),
        settings=settings,
        metrics=metrics,
        clock=clock,
    )
    events = JobEvents(bus, channels)
    # When the shutdown begins, /run waits re-read their jobs and hand their clients over; status streams re-read
    # again once their grace period is over, and end.
    drain.on_begin(events.wake_all)
    drain.on_begin(events.wake_all, after=settings.shutdown_stream_grace_seconds + STREAM_END_MARGIN_SECONDS)
    followers = Followers(store)
    completion = Completion(
        store=store,
        due=due,
        admission=admission,
        ledger=ledger,
        cache=cache,
        followers=followers,
        metrics=metrics,
        hooks=hooks,
        clock=clock,
    )
    queries = JobQueries(store, events, fallback_seconds=settings.watch_fallback_seconds)
    recorder = UpstreamRecorder(store, metrics, keep_seconds=settings.reservation_ttl_seconds)
    tracker = JobTracker(
        settings=settings,
        store=store,
        due=due,
        fal=fal,
        sandbox_fal=sandbox_fal,
        admission=admission,
        completion=completion,
        metrics=metrics,
        recorder=recorder,
        clock=clock,
    )
    signing_keys = SigningKeys(r, settings.webhook_signing_keys)
    webhook_secrets = TenantSecrets(r, grace_seconds=settings.webhook_secret_grace_seconds, clock=clock)
    authenticator = Authenticator(r, tenants, bus, metrics=metrics, settings=settings, clock=clock)
    submits = SubmitPipeline(
        settings=settings,
        store=store,
        due=due,
        fal=fal,
        sandbox_fal=sandbox_fal,
        admission=admission,
        ledger=ledger,
        budgets=budgets,
        cache=cache,
        followers=followers,
        completion=completion,
        recorder=recorder,
        idempotency=IdempotencyKeys(r, store),
        metrics=metrics,
        clock=clock,
    )
    cancellation = Cancellation(
        queries=queries,
        store=store,
        due=due,
        fal=fal,
        sandbox_fal=sandbox_fal,
        followers=followers,
        completion=completion,
        clock=clock,
    )
    return Deps(
        redis=r,
        bus=bus,
        tenants=tenants,
        authenticator=authenticator,
        admission=admission,
        audit=AuditLog(r, max_entries=settings.audit_max_entries, clock=clock),
        ledger=ledger,
        budgets=budgets,
        result_cache=result_cache,
        reconciler=Reconciler(
            r,
            ledger=ledger,
            reader=budgets,
            load_job=store.get,
            tenants=tenants,
            metrics=metrics,
            interval_seconds=settings.budget_reconcile_interval_seconds,
            extend_seconds=settings.reservation_ttl_seconds,
        ),
        job_store=store,
        due=due,
        completion=completion,
        submits=submits,
        queries=queries,
        cancellation=cancellation,
        tracker=tracker,
        job_api=JobApi(
            authenticator, submits, queries, cancellation, ledger, settings, metrics, RunHandovers(r, store), drain
        ),
        signing_keys=signing_keys,
        webhook_secrets=webhook_secrets,
        deliveries=deliveries,
        delivery_worker=_delivery_worker(
            settings,
            clients,
            deliveries=deliveries,
            signing_keys=signing_keys,
            webhook_secrets=webhook_secrets,
            metrics=metrics,
            clock=clock,
        ),
        fal_webhooks=FalWebhookReceiver(
            redis=r,
            jwks=FalJwks(clients.fal_jwks, settings.fal_jwks_url, cache_seconds=settings.fal_jwks_cache_seconds),
            store=store,
            tracker=tracker,
            metrics=metrics,
            tolerance_seconds=settings.fal_webhook_tolerance_seconds,
            clock=clock,
        ),
        recorder=recorder,
        drain=drain,
        uploads=build_uploads(
            settings, r, clients.storage, rest_url=clients.rest_url, holders=authenticator.holder, clock=clock
        ),
    )


def _hasher(settings: Settings, client: GuardedClient) -> ImageHasher:
    return ImageHasher(client, max_bytes=settings.image_hash_max_bytes, timeout=settings.image_hash_timeout_seconds)


def _ledger(settings: Settings, clients: Clients, metrics: Metrics, clock: Callable[[], float]) -> BudgetLedger:
    probe = MediaProbe(
        clients.probe, max_bytes=settings.media_probe_max_bytes, timeout=settings.media_probe_timeout_seconds
    )
    return BudgetLedger(
        clients.redis,
        prices=PriceTable(
            audio_micros_per_million_tokens=settings.price_audio_micros_per_million_tokens,
            silent_micros_per_million_tokens=settings.price_silent_micros_per_million_tokens,
            fps=settings.video_fps,
        ),
        probe=probe,
        probe_mode=ProbeMode(settings.settle_probe),
        ledger_retention_seconds=settings.ledger_retention_seconds,
        metrics=metrics,
        clock=clock,
    )


def _delivery_worker(  # noqa: PLR0913 - the worker's collaborators, all explicit
    settings: Settings,
    clients: Clients,
    *,
    deliveries: DeliveryStore,
    signing_keys: SigningKeys,
    webhook_secrets: TenantSecrets,
    metrics: Metrics,
    clock: Callable[[], float],
) -> DeliveryWorker:
    sender = WebhookSender(
        clients.webhooks,
        signing=signing_keys,
        secrets=webhook_secrets,
        timeout_seconds=settings.webhook_timeout_seconds,
        max_response_bytes=settings.webhook_max_response_bytes,
        clock=clock,
    )
    return DeliveryWorker(
        store=deliveries,
        sender=sender,
        metrics=metrics,
        schedule=parse_schedule(settings.webhook_retry_schedule),
        retry_after_cap=settings.webhook_retry_after_max_seconds,
        concurrency=settings.webhook_concurrency,
        lease_seconds=settings.webhook_lease_seconds,
        tick_seconds=settings.tracker_tick_seconds,
        grace_seconds=settings.tracker_shutdown_grace_seconds,
        clock=clock,
    )
