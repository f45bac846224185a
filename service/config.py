"""Gateway settings: read once from the environment (prefix ``GATEWAY_``) and passed explicitly."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CLUSTER_SHARDS = 8
DEFAULT_UPSTREAM_URL = "https://queue.fal.run"


class Settings(BaseSettings):
    """Every knob the gateway has. Built once by the CLI (or a test) and handed to ``create_app``."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = Field(
        default=None, description="Base URL used in status/response/cancel URLs; default: the request's own."
    )
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    # State
    redis_url: str | None = Field(default=None, description="redis:// or rediss:// URL; required by `serve`.")
    redis_cluster: bool = Field(
        default=False, description="GATEWAY_REDIS_URL is a seed node of a Redis Cluster (no database number)."
    )
    redis_shards: int | None = Field(
        default=None, ge=1, le=256, description="Shards of due schedules and job events (8 on a cluster, else 1)."
    )
    redis_socket_timeout_seconds: float = Field(default=2.0, gt=0)
    redis_max_connections: int = Field(default=200, ge=2, description="Pool size; callers wait for a free one.")
    job_retention_seconds: int = Field(default=7 * 24 * 3600, ge=60)

    # Upstream
    upstream_url: str = DEFAULT_UPSTREAM_URL
    upstream_rest_url: str = Field(
        default="https://rest.fal.ai", description="fal's storage API, where uploads are forwarded with the fal key."
    )
    fal_key: SecretStr | None = None
    simulator: bool = Field(default=False, description="Use the built-in in-process fal simulator as upstream.")
    sandbox_queue_seconds: float = Field(
        default=0.5, ge=0, description="How long a sandbox tenant's job waits in the sandbox simulator's queue."
    )
    sandbox_processing_seconds: float = Field(
        default=2.0, ge=0, description="How long a sandbox tenant's job then runs in the sandbox simulator."
    )
    upstream_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    upstream_read_timeout_seconds: float = Field(default=30.0, gt=0)
    upstream_submit_timeout_seconds: float = Field(default=60.0, gt=0)
    upstream_max_connections: int = Field(default=100, ge=1)
    upstream_keepalive_seconds: float = Field(
        default=4.0,
        gt=0,
        description="How long an idle connection to fal is kept for reuse; below the server's own idle timeout, so a "
        "request never goes out on a connection the server is closing.",
    )
    upstream_submit_connect_retries: int = Field(default=2, ge=0, le=5)
    upstream_breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive failures (transport, timeout, 5xx, 429) that open a circuit."
    )
    upstream_breaker_cooldown_seconds: float = Field(
        default=10.0, gt=0, description="How long an open circuit fails fast; doubled per failed probe, up to 120 s."
    )
    upstream_breaker_probes: int = Field(default=1, ge=1, description="Calls let through at once while half-open.")

    # Admin, tenants and limits
    admin_token: SecretStr | None = None
    audit_max_entries: int = Field(default=100_000, ge=100)
    auth_cache_seconds: float = Field(default=10.0, ge=0, description="Backstop TTL of the invalidated auth cache.")
    auth_failures_per_minute: int = Field(default=30, ge=0, description="Per source address; 0 disables the limit.")
    trusted_proxy_hops: int = Field(default=0, ge=0, description="Proxies in front whose X-Forwarded-For is trusted.")
    key_touch_interval_seconds: float = Field(default=60.0, ge=0)
    concurrency_lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="Concurrency slot lease; renewed by "
        "the tracker, freed by itself if every replica following a job dies.",
    )

    # Request handling
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest request body; beyond: 413.")
    image_to_video_max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest image-to-video submit or run: both frames may come as data: URIs (a large PNG frame of "
        "6 MB is 8 MB in base64); every other request keeps GATEWAY_MAX_BODY_BYTES.",
    )
    upload_max_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1024, description="Largest upload through /rest/storage and /cdn; beyond: 413."
    )
    upload_requests_per_minute: int = Field(
        default=60, ge=0, description="Uploads (initiate, auth/token, CDN upload) per tenant and minute; 0: no limit."
    )
    upload_grant_seconds: float = Field(
        default=3600.0, gt=0, le=7 * 24 * 3600.0, description="Lifetime of a gateway upload URL or CDN upload token."
    )
    run_timeout_seconds: float = Field(default=3600.0, gt=0, description="Longest a /run call waits for its job.")
    proxy_path: str = Field(
        default="/api/fal/proxy",
        pattern=r"^/[A-Za-z0-9._~\-/]*[A-Za-z0-9._~\-]$",
        description="Path of the server-proxy endpoint (fal's `proxyUrl` protocol, `x-fal-target-url`).",
    )
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    watch_fallback_seconds: float = Field(default=1.0, gt=0, description="Re-read interval if a change event is lost.")

    # Connections (service/limits_http*.py): slow clients, header limits and the per-process connection cap
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A request's headers must arrive within this of the connection opening "
        "(or of the previous response); else the connection is closed.",
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A request's body must arrive within this of its headers; else the connection is closed.",
    )
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, description="Request line and headers; beyond: 431.")
    max_headers: int = Field(default=100, ge=8, description="Header fields per request; beyond: 431.")
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open connections (or requests in progress) per process; a request beyond "
        "them gets 503 too_many_connections.",
    )
    http_parser: Literal["httptools", "h11"] = Field(
        default="httptools", description="httptools (llhttp, fast) or h11 (pure Python); the same limits apply to both."
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(default="uvloop", description="uvloop (fast) or asyncio's own.")
    workers: int = Field(default=1, ge=1, le=64, description="`serve` processes sharing the port (SO_REUSEPORT).")

    # Webhooks: delivery, signing, and fal's own webhooks inbound (see docs/webhooks.md)
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhooks to private networks (10/8, 172.16/12, 192.168/16, fc00::/7); loopback, "
        "link-local, metadata and other special addresses stay refused unless GATEWAY_WEBHOOK_ALLOWED_NETWORKS admits "
        "them.",
    )
    webhook_allowed_networks: str = Field(
        default="",
        description="Comma-separated CIDRs webhooks may always reach (for example 127.0.0.0/8 for a receiver on "
        "loopback).",
    )
    webhook_signing_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated Ed25519 keys `<kid>:<base64url 32-byte seed>`; the first signs, all are "
        "published. Unset: one key is generated once and shared by every replica through Redis.",
    )
    webhook_retry_schedule: str = Field(
        default="5,300,1800,7200,18000,36000,36000",
        pattern=r"^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?)*\s*$",
        description="Seconds between delivery attempts (jittered); after the last, the delivery is dead-lettered.",
    )
    webhook_timeout_seconds: float = Field(default=15.0, gt=0)
    webhook_retry_after_max_seconds: float = Field(default=3600.0, ge=0, description="Cap on a receiver's Retry-After.")
    webhook_max_response_bytes: int = Field(default=16 * 1024, ge=0, description="How much of an answer is read.")
    webhook_secret_grace_seconds: float = Field(
        default=24 * 3600.0, ge=0, description="How long a rotated tenant secret keeps signing beside the new one."
    )
    webhook_concurrency: int = Field(default=32, ge=1)
    webhook_lease_seconds: float = Field(
        default=60.0, gt=0, description="A delivery claimed by a dead replica returns."
    )
    webhook_retention_seconds: int = Field(default=7 * 24 * 3600, ge=60, description="Delivery log retention.")
    fal_webhooks: bool = Field(
        default=False,
        description="Ask fal to call the gateway's receiver when a job ends (needs GATEWAY_PUBLIC_URL); polling "
        "stays as the fallback at GATEWAY_FAL_WEBHOOK_POLL_SECONDS.",
    )
    fal_jwks_url: str = "https://rest.fal.ai/.well-known/jwks.json"
    fal_jwks_cache_seconds: float = Field(default=24 * 3600.0, gt=0, le=24 * 3600.0)
    fal_webhook_tolerance_seconds: float = Field(default=300.0, gt=0)
    fal_webhook_poll_seconds: float = Field(default=60.0, gt=0)

    # Pricing and budgets (money is integer micro-USD)
    price_audio_micros_per_million_tokens: int = Field(default=2_400_000, gt=0)
    price_silent_micros_per_million_tokens: int = Field(default=1_200_000, gt=0)
    video_fps: int = Field(default=24, gt=0)
    admission_provisional_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a concurrency slot and a budget reservation are held before their job record confirms "
        "them: an admission whose record never appears (a stalled Redis) frees itself, with the reconciler, within a "
        "minute.",
    )
    reservation_ttl_seconds: float = Field(
        default=6 * 3600,
        gt=0,
        description="When an open reservation is checked against its job by the reconciler (and extended if running).",
    )
    ledger_retention_seconds: int = Field(
        default=400 * 24 * 3600,
        ge=0,
        description="How long budget periods, ledgers and breakdowns are kept after the period ends (0: keep).",
    )
    budget_reconcile_interval_seconds: float = Field(default=30.0, gt=0)
    settle_probe: str = Field(
        default="auto",
        pattern="^(auto|always|never)$",
        description="When to read the "
        "produced size from the video's MP4 header: auto (aspect_ratio auto only), always, never.",
    )
    media_probe_timeout_seconds: float = Field(default=5.0, gt=0)
    media_probe_max_bytes: int = Field(default=256 * 1024, ge=1024)
    media_probe_allow_private: bool = Field(default=False, description="Allow probing media on private addresses.")

    # Result cache
    cache_enabled: bool = Field(default=True, description="Answer identical seeded requests from the cache.")
    cache_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    upstream_media_retention_seconds: int = Field(
        default=7 * 24 * 3600, ge=60, description="How long fal keeps output media; no cache entry outlives it."
    )
    cache_content_hashing: bool = Field(default=False, description="Hash input images by content, not by URL.")
    image_hash_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    image_hash_timeout_seconds: float = Field(default=10.0, gt=0)
    image_hash_allow_private: bool = Field(default=False)

    # Job tracker
    tracker_enabled: bool = Field(default=True, description="Run the job tracker inside `serve`.")
    tracker_poll_initial_seconds: float = Field(default=0.5, gt=0)
    tracker_poll_max_seconds: float = Field(
        default=5.0, gt=0, description="Longest wait between polls of a running job."
    )
    tracker_poll_queued_max_seconds: float = Field(
        default=15.0, gt=0, description="Longest wait between polls of a job still in fal's queue."
    )
    tracker_poll_backoff: float = Field(default=1.5, ge=1.0)
    tracker_lease_seconds: float = Field(default=30.0, gt=0)
    tracker_concurrency: int = Field(default=32, ge=1)
    tracker_tick_seconds: float = Field(default=0.1, gt=0)
    tracker_batch_size: int = Field(default=64, ge=1)
    tracker_shutdown_grace_seconds: float = Field(
        default=5.0,
        ge=0,
        le=9.0,
        description="On shutdown: how long tracker steps and webhook attempts in flight may finish; the rest is "
        "cancelled and handed back, due now, to the other replicas.",
    )
    shutdown_stream_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        le=14.0,
        description="On shutdown: how long open status streams keep following their jobs before they end with a "
        "reconnect hint (within the 15 s graceful window; fal's JS client fetches the result when a stream ends).",
    )

    # Metrics
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve /metrics on this port too (worker N of --workers: port + N)."
    )
    metrics_refresh_seconds: float = Field(
        default=15.0, gt=0, description="How often gauges read from Redis (jobs in flight) are refreshed."
    )

    # Logging
    log_level: str = "INFO"
    log_json: bool | None = Field(default=None, description="JSON logs; default: JSON unless stderr is a TTY.")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE must be set together")
        if self.tracker_poll_max_seconds < self.tracker_poll_initial_seconds:
            raise ValueError("GATEWAY_TRACKER_POLL_MAX_SECONDS must be >= GATEWAY_TRACKER_POLL_INITIAL_SECONDS")
        if self.tracker_poll_queued_max_seconds < self.tracker_poll_initial_seconds:
            raise ValueError("GATEWAY_TRACKER_POLL_QUEUED_MAX_SECONDS must be >= GATEWAY_TRACKER_POLL_INITIAL_SECONDS")
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            # A delivery still being sent must not be claimed again by another replica.
            raise ValueError("GATEWAY_WEBHOOK_LEASE_SECONDS must be longer than GATEWAY_WEBHOOK_TIMEOUT_SECONDS")
        if 0 < self.ledger_retention_seconds < self.job_retention_seconds:  # a period outlives the jobs booked to it
            raise ValueError("GATEWAY_LEDGER_RETENTION_SECONDS must be 0 or at least GATEWAY_JOB_RETENTION_SECONDS")
        return self

    @property
    def submit_grace_seconds(self) -> float:
        """How long a job may stay unsubmitted before it counts as abandoned by a replica that died mid-submit: the
        submit deadline plus one tracker lease."""
        return self.upstream_submit_timeout_seconds + self.tracker_lease_seconds

    @property
    def submit_max_body_bytes(self) -> int:
        """The body limit of the submit, run and estimate routes: the larger of the two limits (each endpoint's own
        is checked once the endpoint is known)."""
        return max(self.max_body_bytes, self.image_to_video_max_body_bytes)

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def shards(self) -> int:
        """How many shards the due schedules and the job event channel have (``service.keys``)."""
        return self.redis_shards or (CLUSTER_SHARDS if self.redis_cluster else 1)
