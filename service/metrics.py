"""Every Prometheus metric the gateway exports, declared once per app on its own registry. No logic here.

Labels are bounded: endpoint ids (two), outcomes, operations and status classes. Budget metrics carry a ``tenant``
label, because per-tenant spend is what operators chart; tenants are created by operators, so that set is
bounded by them (dozens, not millions).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "gateway_http_requests_total", "HTTP requests served", ["method", "route", "status_class"], registry=r
        )
        self.http_duration = Histogram(
            "gateway_http_request_duration_seconds",
            "HTTP request latency",
            ["route"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.http_overhead = Histogram(
            "gateway_http_overhead_seconds",
            "The gateway's own time per request: the whole request minus its calls to fal and its waits for a job",
            ["route"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.redis_up = Gauge("gateway_redis_up", "1 when this process reaches Redis, 0 when it does not", registry=r)
        self.redis_duration = Histogram(
            "gateway_redis_command_duration_seconds",
            "Latency of Redis commands and pipelines as this process sees them (a pipeline is labelled PIPELINE)",
            ["command"],
            registry=r,
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
        )
        self.jobs_in_flight = Gauge(
            "gateway_jobs_in_flight",
            "Jobs not yet completed, by state, as last read from Redis (the same for every replica)",
            ["state"],
            registry=r,
        )
        self.tracker_lag = Histogram(
            "gateway_tracker_lag_seconds",
            "How late the tracker claims a job after it was due",
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.upstream_requests = Counter(
            "gateway_upstream_requests_total",
            "Calls to fal by operation and HTTP status (or error)",
            ["op", "outcome"],
            registry=r,
        )
        self.upstream_duration = Histogram(
            "gateway_upstream_request_duration_seconds",
            "Latency of calls to fal",
            ["op"],
            registry=r,
        )
        # Circuit breakers and retries of calls to fal (service/upstream/breaker.py), per process.
        self.upstream_circuit_state = Gauge(
            "gateway_upstream_circuit_state",
            "Circuit breaker state of each upstream operation in this process: 0 closed, 1 half-open, 2 open",
            ["op"],
            registry=r,
        )
        self.upstream_circuit_transitions = Counter(
            "gateway_upstream_circuit_transitions_total",
            "Circuit breaker state changes by operation and new state (closed, half_open, open)",
            ["op", "to"],
            registry=r,
        )
        self.upstream_retries = Counter(
            "gateway_upstream_retries_total",
            "Repeated attempts of calls to fal by operation and reason (not_sent, timeout, unavailable, server_error, "
            "rate_limited)",
            ["op", "reason"],
            registry=r,
        )
        self.jobs_submitted = Counter(
            "gateway_jobs_submitted_total", "Jobs accepted and sent to fal", ["endpoint", "mode"], registry=r
        )
        self.jobs_completed = Counter(
            "gateway_jobs_completed_total", "Jobs that reached COMPLETED", ["endpoint", "outcome"], registry=r
        )
        # Sandbox tenants' jobs (served by the sandbox simulator) are counted here instead of in the two above.
        self.sandbox_jobs_submitted = Counter(
            "gateway_sandbox_jobs_submitted_total",
            "Sandbox jobs sent to the sandbox simulator",
            ["endpoint", "mode"],
            registry=r,
        )
        self.sandbox_jobs_completed = Counter(
            "gateway_sandbox_jobs_completed_total",
            "Sandbox jobs that reached COMPLETED",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.requests_rejected = Counter(
            "gateway_requests_rejected_total", "Requests refused before reaching fal", ["reason"], registry=r
        )
        self.background_errors = Counter(
            "gateway_background_errors_total",
            "Errors survived by a background loop (tracker, reconciler, event bus); each is logged with its traceback",
            ["loop"],
            registry=r,
        )
        self.upstream_ids_pending = Gauge(
            "gateway_upstream_ids_pending",
            "Jobs fal accepted whose upstream id waits in this process for Redis to come back",
            registry=r,
        )
        self.upstream_ids_lost = Counter(
            "gateway_upstream_ids_lost_total",
            "Jobs fal accepted whose upstream id could never be recorded (the job fails as outcome unknown)",
            registry=r,
        )
        self.tracker_polls = Counter(
            "gateway_tracker_polls_total", "Upstream status polls made by the job tracker", ["outcome"], registry=r
        )
        self.budget_spent = Gauge(
            "gateway_budget_spent_micros", "Settled spend in the current budget period", ["tenant"], registry=r
        )
        self.budget_reserved = Gauge(
            "gateway_budget_reserved_micros", "Open reservations in the current budget period", ["tenant"], registry=r
        )
        self.budget_limit = Gauge(
            "gateway_budget_limit_micros",
            "The current period's budget limit (tenants with a budget)",
            ["tenant"],
            registry=r,
        )
        self.budget_remaining = Gauge(
            "gateway_budget_remaining_micros",
            "Limit minus spent minus reserved (tenants with a budget)",
            ["tenant"],
            registry=r,
        )
        self.charges_micros = Counter(
            "gateway_charges_micros_total", "Settled charges", ["tenant", "endpoint"], registry=r
        )
        self.budget_rejections = Counter(
            "gateway_budget_rejections_total", "Requests refused with 402", ["tenant"], registry=r
        )
        self.budget_alerts = Counter(
            "gateway_budget_alerts_total",
            "Budget thresholds crossed (once per period each)",
            ["tenant", "alert"],
            registry=r,
        )
        self.reservations_reconciled = Counter(
            "gateway_budget_reservations_reconciled_total",
            "Expired reservations resolved by the reconciler",
            ["outcome"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "gateway_webhook_deliveries_total",
            "Webhook deliveries that ended: delivered, or failed after their last attempt (dead-lettered)",
            ["outcome"],
            registry=r,
        )
        self.webhook_attempts = Counter(
            "gateway_webhook_attempts_total",
            "Webhook delivery attempts by result (2xx, 4xx, 5xx, network_error, refused)",
            ["result"],
            registry=r,
        )
        self.webhook_attempt_seconds = Histogram(
            "gateway_webhook_attempt_duration_seconds",
            "Latency of one webhook delivery attempt",
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.webhook_delivery_seconds = Histogram(
            "gateway_webhook_delivery_latency_seconds",
            "From a job's completion to its webhook's successful delivery",
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 1800, 7200, 36000, 86400),
        )
        self.webhook_dead_letters = Counter(
            "gateway_webhook_dead_letters_total", "Deliveries that used every attempt (or were refused)", registry=r
        )
        self.webhook_queue_depth = Gauge(
            "gateway_webhook_queue_depth", "Webhook deliveries pending (due now or waiting for a retry)", registry=r
        )
        self.webhook_oldest_pending_seconds = Gauge(
            "gateway_webhook_oldest_pending_seconds", "How overdue the most overdue pending delivery is", registry=r
        )
        self.fal_webhooks = Counter(
            "gateway_fal_webhooks_total",
            "Webhooks from fal received: accepted, or refused by reason",
            ["result"],
            registry=r,
        )
        self.cache_lookups = Counter(
            "gateway_cache_lookups_total",
            "Cacheable requests by how they were answered (hit, follow, lead, miss)",
            ["outcome"],
            registry=r,
        )
        self.cache_bypasses = Counter(
            "gateway_cache_bypasses_total", "Requests that skipped the cache lookup", registry=r
        )
        self.cache_saved_micros = Counter(
            "gateway_cache_saved_micros_total",
            "Estimated cost of requests answered by a hit or a merged follower",
            ["tenant", "how"],
            registry=r,
        )
