"""Cache keys (pure): when a request may be answered from the cache, and the canonical hash of what it asks for.

The hash covers the endpoint and the validated input with every default filled in, keys sorted and types
normalised, so requests that mean the same thing hash the same (``"duration": "5"`` and no duration; no
``generate_audio`` and ``true``; no seed and ``-1``, both "random") and requests that differ in any field do not.
Every field is included, because any of them may change the video. Images may be hashed by content: their digests
then replace the URLs. The key starts with the hash version, so changing these rules can never serve an entry
computed under the old ones. The scope (a tenant, or a shared namespace) is hashed in too, so scopes never meet,
and so is the scope's generation (bumped by every purge of the scope), so a purge makes every older key unreachable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from service.domain.schemas import TextToVideoInput, normalized_input

HASH_VERSION = 1
IMAGE_FIELDS = ("image_url", "end_image_url")


def is_cacheable(data: TextToVideoInput, *, seedless: bool) -> bool:
    """Only deterministic requests are cacheable: an explicit seed other than -1, unless the tenant opted in to
    caching seedless requests ("same prompt, same video")."""
    return data.is_seeded or seedless


def scope_of(tenant_id: str, namespace: str | None, *, sandbox: bool = False) -> str:
    """The cache scope of a tenant's requests. Sandbox tenants' scopes are their own namespace (``sandbox:...``):
    simulated results never answer a real tenant, nor real ones a sandbox tenant, even under a shared namespace."""
    scope = f"ns:{namespace}" if namespace else f"tenant:{tenant_id}"
    return f"sandbox:{scope}" if sandbox else scope


def canonical_request(
    endpoint_id: str, data: TextToVideoInput, image_digests: Mapping[str, str] | None = None
) -> dict[str, Any]:
    values = normalized_input(data)
    if values.get("seed") == -1:
        del values["seed"]
    for field, digest in (image_digests or {}).items():
        if field in IMAGE_FIELDS and field in values:
            values[field] = digest
    return {"endpoint": endpoint_id, "input": values}


def cache_key(
    scope: str,
    endpoint_id: str,
    data: TextToVideoInput,
    image_digests: Mapping[str, str] | None = None,
    *,
    generation: int = 0,
) -> str:
    """``v<version>-<sha256 hex>`` of the scope, the canonical request and the scope's generation. Generation 0
    adds nothing, so keys from before generations existed stay valid. A later one follows the canonical request,
    a one-line JSON object ending in ``}``, so no two (scope, request, generation) triples hash the same text."""
    canonical = json.dumps(
        canonical_request(endpoint_id, data, image_digests), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    material = f"{HASH_VERSION}\n{scope}\n{canonical}" + (f"\ng{generation}" if generation else "")
    digest = hashlib.sha256(material.encode()).hexdigest()
    return f"v{HASH_VERSION}-{digest}"
