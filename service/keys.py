"""Every Redis key the gateway uses. The only module that formats key strings.

Layout (``gw:v1:`` prefix; braces are Redis Cluster hash tags so the keys one Lua script touches share a slot):

- ``gw:v1:tenant:{<tid>}``            tenant record (JSON string)
- ``gw:v1:tenant:{<tid>}:keys``       SET of the tenant's key ids
- ``gw:v1:tenant:{<tid>}:requests``   ZSET of the tenant's request ids by creation time (operator history)
- ``gw:v1:tenant:{<tid>}:rate``       ZSET sliding window of admitted requests (requests per minute)
- ``gw:v1:tenant:{<tid>}:inflight``   ZSET of unfinished request ids, scored by their lease expiry
- ``gw:v1:tenant:{<tid>}:budget:<p>`` HASH ``spent`` / ``reserved`` micro-USD of budget period ``p``
- ``gw:v1:tenant:{<tid>}:resv``       HASH request id -> ``<reserved micros>:<period>`` of open reservations
- ``gw:v1:tenant:{<tid>}:resv:exp``   ZSET request id -> reservation expiry (ms), for reconciliation
- ``gw:v1:tenant:{<tid>}:charges:<p>`` HASH request id -> settled charge (JSON): the ledger, one entry per request
- ``gw:v1:tenant:{<tid>}:charges:<p>:idx`` ZSET request id -> settlement time (ms), to page the ledger
- ``gw:v1:tenant:{<tid>}:breakdown:<p>`` HASH ``<endpoint>|<resolution>|<audio>`` -> micros (and ``...|count``)
- ``gw:v1:tenant:{<tid>}:alerts:<p>`` HASH alert name -> time it fired (one event per period)
- ``gw:v1:tenant:{<tid>}:whsec``      HASH ``current`` / ``previous`` / ``previous_until`` Standard Webhooks secrets
- ``gw:v1:job:{<rid>}:followers``     SET of request ids merged into this (leader) request's upstream job
- ``gw:v1:tenant:{<tid>}:idem:<h>``   HASH fingerprint / request id of an Idempotency-Key (sha256 ``h``), 24 h
- ``gw:v1:tenant:{<tid>}:handover:<h>`` LIST of ``/run`` request ids a replica shutting down handed over, per request
                                      (sha256 ``h`` of endpoint and input), taken by the clients' retries; 5 min
- ``gw:v1:job:{<rid>}:outbox``        HASH hook name -> payload written with the job's completion, until dispatched
- ``gw:v1:cache:{<ck>}``              cached result (JSON) of cache key ``ck`` (which embeds the hash version)
- ``gw:v1:cache:{<ck>}:leader``       request id of the in-flight request others with key ``ck`` attach to
- ``gw:v1:cachescope:{<scope>}``      SET of cache keys written in a scope (a tenant or a namespace), for purges
- ``gw:v1:cachescope:{<scope>}:gen``  the scope's generation (counter, never expires), embedded in its cache keys and
                                      bumped by every purge, so one purge makes all older entries unreachable at once
- ``gw:v1:tenants``                   SET of tenant ids
- ``gw:v1:budget:tenants``            SET of tenant ids that ever reserved (the reconciler's work list)
- ``gw:v1:budget:reconcile-lock``     one replica reconciles at a time
- ``gw:v1:webhook:signing-key``       generated Ed25519 webhook signing key ``<kid>:<seed>`` (none configured)
- ``gw:v1:apikey:{<key_id>}``         API key record (hash; holds only a hash of the secret)
- ``gw:v1:authfail:{<source>}:<n>``   failed authentications from one source in minute ``n``
- ``gw:v1:audit``                     stream of admin actions
- ``gw:v1:job:{<rid>}``               job record (hash), expires ``job_retention_seconds`` after completion
- ``gw:v1:tracker:due``               ZSET of request ids, scored by the epoch-ms of their next upstream poll;
                                      a claimed entry is re-scored to "now + lease" so a dead replica's work returns.
                                      With ``GATEWAY_REDIS_SHARDS`` > 1, N shards ``gw:v1:tracker:due:{tdue<k>.<i>}``
                                      instead (see "Shards" below); a request id's shard is crc32(id) mod N
- ``gw:v1:webhook:{<did>}``           webhook delivery record (hash): target, body, state, attempt count
- ``gw:v1:webhook:{<did>}:attempts``  LIST of the delivery's attempts (JSON: time, status, latency, error)
- ``gw:v1:webhook:due``               ZSET of pending delivery ids by next attempt (epoch ms), claimed as leases;
                                      sharded like the tracker's (``gw:v1:webhook:due:{wdue<k>.<i>}``)
- ``gw:v1:webhooks``                  ZSET of every delivery id by creation (ms), for the operator's log
- ``gw:v1:tenant:{<tid>}:webhooks``   ZSET of the tenant's delivery ids by creation (ms)
- ``gw:v1:upload:{<id>}``             HASH of an upload URL the gateway handed out: tenant, expiry, fal's URL (one use)
- ``gw:v1:uploadtoken:{<sha256>}``    HASH of a CDN upload token the gateway minted (only its hash): tenant, expiry
- ``gw:v1:tenant:{<tid>}:uploads:<n>`` uploads of the tenant in minute ``n`` (the upload rate limit)
- ``gw:v1:falhook:{<digest>}``        an inbound fal webhook signature already accepted (replay guard, expires)
- ``gw:v1:sandboxjob:{<id>}``         a sandbox simulator job (JSON), so every replica's sandbox answers for it
- ``gw:v1:sandboxfile:{<id>}``        HASH ``type`` / ``data`` (base64) of a sandbox tenant's upload, served by every
                                      replica at ``/_sandbox/files/<id>/<name>``; job retention, at most a day
- ``gw:v1:events:job``                pub/sub channel: a request id is published whenever its job record changes;
                                      sharded like the due sets (``gw:v1:events:job:{ejob<k>.<i>}``), the request's
                                      channel being its id's shard
- ``gw:v1:events:auth``               pub/sub channel: ``key:<key_id>`` / ``tenant:<tid>`` when either changes
- ``gw:v1:shards``                    the largest shard count any replica has used, so that one running with fewer
                                      shards moves the entries of the shards it no longer has into its own

Shards: the hash tag ``<name><k>.<i>`` of shard ``k`` of ``N`` is the first ``i`` that puts the key in the ``k``-th
``N``-th of the 16,384 cluster slots. Masters own contiguous slot ranges, so the shards spread evenly over them.
"""

from __future__ import annotations

import functools
import zlib

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

PREFIX = "gw:v1"
MAX_SHARDS = 256


def tenant(tenant_id: str) -> str:
    return f"{PREFIX}:tenant:{{{tenant_id}}}"


def tenant_keys(tenant_id: str) -> str:
    return f"{tenant(tenant_id)}:keys"


def tenant_requests(tenant_id: str) -> str:
    return f"{tenant(tenant_id)}:requests"


def rate_window(tenant_id: str) -> str:
    return f"{tenant(tenant_id)}:rate"


def inflight(tenant_id: str) -> str:
    return f"{tenant(tenant_id)}:inflight"


def budget(tenant_id: str, period_id: str) -> str:
    return f"{tenant(tenant_id)}:budget:{period_id}"


def reservations(tenant_id: str) -> str:
    return f"{tenant(tenant_id)}:resv"


def reservation_expiry(tenant_id: str) -> str:
    return f"{tenant(tenant_id)}:resv:exp"


def charges(tenant_id: str, period_id: str) -> str:
    return f"{tenant(tenant_id)}:charges:{period_id}"


def charges_index(tenant_id: str, period_id: str) -> str:
    return f"{charges(tenant_id, period_id)}:idx"


def breakdown(tenant_id: str, period_id: str) -> str:
    return f"{tenant(tenant_id)}:breakdown:{period_id}"


def budget_alerts(tenant_id: str, period_id: str) -> str:
    return f"{tenant(tenant_id)}:alerts:{period_id}"


def webhook_secrets(tenant_id: str) -> str:
    return f"{tenant(tenant_id)}:whsec"


def idempotency(tenant_id: str, key_digest: str) -> str:
    return f"{tenant(tenant_id)}:idem:{key_digest}"


def run_handover(tenant_id: str, request_digest: str) -> str:
    return f"{tenant(tenant_id)}:handover:{request_digest}"


def budget_tenants() -> str:
    return f"{PREFIX}:budget:tenants"


def reconcile_lock() -> str:
    return f"{PREFIX}:budget:reconcile-lock"


def webhook_signing_key() -> str:
    return f"{PREFIX}:webhook:signing-key"


def auth_failures(source: str, window: int) -> str:
    return f"{PREFIX}:authfail:{{{source}}}:{window}"


def audit_log() -> str:
    return f"{PREFIX}:audit"


def tenant_index() -> str:
    return f"{PREFIX}:tenants"


def api_key(key_id: str) -> str:
    return f"{PREFIX}:apikey:{{{key_id}}}"


def job(request_id: str) -> str:
    return f"{PREFIX}:job:{{{request_id}}}"


def sandbox_job(upstream_id: str) -> str:
    return f"{PREFIX}:sandboxjob:{{{upstream_id}}}"


def sandbox_file(file_id: str) -> str:
    return f"{PREFIX}:sandboxfile:{{{file_id}}}"


def job_followers(request_id: str) -> str:
    return f"{job(request_id)}:followers"


def job_outbox(request_id: str) -> str:
    return f"{job(request_id)}:outbox"


def cache_entry(cache_key: str) -> str:
    return f"{PREFIX}:cache:{{{cache_key}}}"


def cache_leader(cache_key: str) -> str:
    return f"{cache_entry(cache_key)}:leader"


def cache_scope(scope: str) -> str:
    return f"{PREFIX}:cachescope:{{{scope}}}"


def cache_scope_generation(scope: str) -> str:
    return f"{cache_scope(scope)}:gen"


def webhook_delivery(delivery_id: str) -> str:
    return f"{PREFIX}:webhook:{{{delivery_id}}}"


def webhook_attempts(delivery_id: str) -> str:
    return f"{webhook_delivery(delivery_id)}:attempts"


def webhook_due() -> str:
    return f"{PREFIX}:webhook:due"


def webhook_index() -> str:
    return f"{PREFIX}:webhooks"


def tenant_webhooks(tenant_id: str) -> str:
    return f"{tenant(tenant_id)}:webhooks"


def fal_webhook_seen(digest: str) -> str:
    return f"{PREFIX}:falhook:{{{digest}}}"


def tracker_due() -> str:
    """The tracker's due schedule with one shard (``tracker_due_shards(1)``)."""
    return f"{PREFIX}:tracker:due"


def tracker_due_shards(count: int) -> tuple[str, ...]:
    return _sharded(tracker_due(), "tdue", count)


def webhook_due_shards(count: int) -> tuple[str, ...]:
    return _sharded(webhook_due(), "wdue", count)


def job_events_channel() -> str:
    """The job event channel with one shard (``job_event_channels(1)``)."""
    return f"{PREFIX}:events:job"


def job_event_channels(count: int) -> tuple[str, ...]:
    return _sharded(job_events_channel(), "ejob", count)


def shard_index(member: str, count: int) -> int:
    """The shard (of ``count``) that holds ``member``: the same for every replica and every release."""
    return zlib.crc32(member.encode()) % count if count > 1 else 0


def shard_count_record() -> str:
    return f"{PREFIX}:shards"


def _sharded(base: str, name: str, count: int) -> tuple[str, ...]:
    if count == 1:
        return (base,)
    return tuple(f"{base}:{{{tag}}}" for tag in _spread_tags(name, count))


@functools.cache
def _spread_tags(name: str, count: int) -> tuple[str, ...]:
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"shard count must be 1..{MAX_SHARDS}, not {count}")
    tags: list[str] = []
    for shard in range(count):
        low = shard * REDIS_CLUSTER_HASH_SLOTS // count
        high = (shard + 1) * REDIS_CLUSTER_HASH_SLOTS // count
        suffix = 0
        while not low <= key_slot(f"{name}{shard}.{suffix}".encode()) < high:
            suffix += 1
        tags.append(f"{name}{shard}.{suffix}")
    return tuple(tags)


def auth_events_channel() -> str:
    return f"{PREFIX}:events:auth"


def upload_grant(grant_id: str) -> str:
    return f"{PREFIX}:upload:{{{grant_id}}}"


def upload_token(token_digest: str) -> str:
    return f"{PREFIX}:uploadtoken:{{{token_digest}}}"


def upload_rate(tenant_id: str, window: int) -> str:
    return f"{tenant(tenant_id)}:uploads:{window}"
