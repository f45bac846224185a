"""What the whole document says of the gateway's own routes beyond what Litestar reads from their handlers: the
errors each may send besides its role's, the models of the dicts some handlers build, request bodies the handlers
read raw, the public routes, the per-endpoint document route and fal's server proxy (``service/proxy.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.apidoc.components import Schema, ref
from service.apidoc.responses import errors, headers

ADMIN_ERRORS = (401, 429, 503)
UPSTREAM = (502, 503, 504)
STORAGE_ERRORS = (400, 413, *UPSTREAM)
# Besides the role's errors, 404 for a route with a path parameter and 422 for one with a query or a body.
EXTRA_ERRORS: dict[str, tuple[int, ...]] = {
    "POST /admin/tenants": (409,),
    "POST /admin/tenants/{tenant_id}/keys/{key_id}/rotate": (409,),
    "POST /rest/storage/upload/initiate": STORAGE_ERRORS,
    "POST /rest/storage/auth/token": (400,),
    "PUT /rest/storage/uploads/{grant_id}": STORAGE_ERRORS,
    "POST /cdn/files/upload": STORAGE_ERRORS,
    "POST /rest/storage/upload/initiate-multipart": (413,),
    "POST /rest/storage/upload/complete-multipart": (413,),
    "POST /cdn/files/upload/multipart": (413,),
}
# Routes without a key: the statuses they answer besides their success.
PUBLIC_ROUTES: dict[str, tuple[int, ...]] = {
    "GET /.well-known/jwks.json": (503,),
    "GET /openapi/queue/openapi.json": (404, 422),
}
# (status, body, description) of the routes whose handlers build plain dicts (or answer only an error).
SUCCESS_BODIES: dict[str, tuple[str, str | Schema, str]] = {
    "GET /.well-known/jwks.json": ("200", "Jwks", "The public keys of the gateway's webhook signatures."),
    "DELETE /admin/tenants/{tenant_id}/cache": ("200", "TenantCachePurged", "The tenant's own entries, purged."),
    "DELETE /admin/cache/namespaces/{namespace}": ("200", "NamespaceCachePurged", "The namespace's entries, purged."),
    "DELETE /admin/cache/entries/{cache_key}": ("200", "CacheEntryPurged", "The entry, purged."),
    "GET /admin/requests/{request_id}": (
        "200",
        {"allOf": [ref("RequestSummary"), ref("RequestRecordDetail")]},
        "The whole job record: input, status, logs, result or error.",
    ),
    "GET /admin/tenants/{tenant_id}/usage": ("200", "BudgetUsage", "The tenant's budget and spend in the period."),
    "GET /v1/usage": ("200", "BudgetUsage", "The calling tenant's budget and spend in the current period."),
    "GET /admin/tenants/{tenant_id}/charges": ("200", "ChargePage", "One page of the period's settled charges."),
    "POST /rest/storage/upload/initiate": ("200", "UploadInitiated", "Where to PUT the file, and its URL."),
    "POST /rest/storage/auth/token": ("200", "UploadToken", "An upload token for the CDN upload."),
    "PUT /rest/storage/uploads/{grant_id}": ("200", "Uploaded", "The file is stored."),
    "POST /cdn/files/upload": ("200", "CdnUploaded", "The file is stored."),
}
FILE_BYTES: Schema = {
    "required": True,
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    "description": "The file's bytes, sent with the file's own Content-Type (any is accepted).",
}
REQUEST_BODIES: dict[str, Schema] = {
    "POST /rest/storage/upload/initiate": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "content_type": {"type": "string", "examples": ["image/png"]},
                        "file_name": {"type": "string", "examples": ["frame.png"]},
                    },
                }
            }
        },
    },
    "PUT /rest/storage/uploads/{grant_id}": FILE_BYTES,
    "POST /cdn/files/upload": FILE_BYTES,
    "PATCH /admin/tenants/{tenant_id}": {
        "required": True,
        "content": {"application/json": {"schema": ref("TenantPatch")}},
    },
}


@dataclass(frozen=True)
class Route:
    path: str
    operation: dict[str, Any]


def document_route() -> Route:
    """``GET /openapi/queue/openapi.json``: fal's per-endpoint document, public like fal's."""
    return Route(
        "/openapi/queue/openapi.json",
        {
            "summary": "fal's OpenAPI document of one endpoint, served by the gateway",
            "description": "Shaped like fal's own (`https://fal.ai/api/openapi/queue/openapi.json?endpoint_id=...`): "
            "the endpoint's submit, status, result and cancel on the gateway's queue (its `servers`: "
            "GATEWAY_PUBLIC_URL, or the request's own scheme and host, followed by `/queue`). No key needed.",
            "tags": ["openapi"],
            "parameters": [
                {
                    "name": "endpoint_id",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "examples": ["fal-ai/bytedance/seedance/v1.5/pro/image-to-video"]},
                    "description": "The endpoint's id.",
                }
            ],
            "responses": {
                "200": {
                    "description": "The endpoint's OpenAPI 3.0 document.",
                    "headers": headers(),
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "required": ["openapi", "info", "paths", "servers"]}
                        }
                    },
                },
                **errors((404, 422)),
            },
        },
    )


PROXY_BODY = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": {}}},
        "description": "The target's body.",
    }
}


def proxy_paths(proxy_path: str) -> dict[str, Schema]:
    """fal's server proxy (``@fal-ai/server-proxy``'s protocol) at ``GATEWAY_PROXY_PATH``: a request for one of the
    gateway's own fal routes, named by ``x-fal-target-url``, is answered exactly as on that route."""
    target = {
        "name": "x-fal-target-url",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "examples": ["https://queue.fal.run/fal-ai/bytedance/requests/<id>/status"]},
        "description": "The fal URL the client means: queue.fal.run, fal.run or rest.fal.ai/storage, for the routes "
        "of this document.",
    }
    refusal: Schema = {"type": "string", "examples": ["Invalid request"]}
    answers = {
        "2XX": {
            "description": "The target route's answer (see that route).",
            "headers": headers(),
            "content": {"application/json": {"schema": {}}, "text/event-stream": {"schema": {"type": "string"}}},
        },
        "400": {
            "description": "A missing x-fal-target-url, or a fal target the gateway does not serve: a JSON string. "
            "The target route's own 400 otherwise.",
            "headers": headers(),
            "content": {"application/json": {"schema": {}}},
        },
        "412": {
            "description": "A target host that is not fal's: a JSON string.",
            "headers": headers(),
            "content": {"application/json": {"schema": refusal}},
        },
        "4XX": {
            "description": "The target route's error (see that route).",
            "headers": headers("X-Fal-Error-Type", "Retry-After"),
            "content": {"application/json": {"schema": {}}},
        },
        "5XX": {
            "description": "The target route's error (see that route).",
            "headers": headers("X-Fal-Error-Type", "Retry-After"),
            "content": {"application/json": {"schema": {}}},
        },
    }
    operation = {
        "summary": "fal's server proxy",
        "tags": ["proxy"],
        "parameters": [target],
        "security": [{}, {"tenantKey": []}],
        "responses": answers,
    }
    return {
        proxy_path: {
            method: {**operation, "operationId": f"proxy_{method}", **({} if method == "get" else PROXY_BODY)}
            for method in ("get", "post", "put")
        }
    }
