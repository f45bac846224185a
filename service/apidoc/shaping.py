"""The whole document: Litestar's, generated from the route handlers, reshaped where the handlers cannot describe
themselves. The generic queue, run and estimate routes become one operation per real route and endpoint
(``fal_paths.py``); every operation gets the errors the gateway sends instead of Litestar's validation error (which
the gateway never sends), the headers of its answers, its security, and, where a handler builds a plain dict, the
model of that dict (``gateway_bodies.py``)."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import TypeAdapter

from service.apidoc.components import Schema, adapter_component, merge, model_components, ref
from service.apidoc.fal_bodies import FAL_BODIES, QueueStatus
from service.apidoc.fal_paths import TENANT_ERRORS, fal_paths
from service.apidoc.gateway_bodies import GATEWAY_BODIES
from service.apidoc.responses import errors, header_components, headers, json_response
from service.apidoc.routes import (
    ADMIN_ERRORS,
    EXTRA_ERRORS,
    PUBLIC_ROUTES,
    REQUEST_BODIES,
    SUCCESS_BODIES,
    document_route,
    proxy_paths,
)
from service.domain.schemas import INPUT_MODELS, SeedanceOutput

GENERIC_PATHS = ("/queue/{fal_path}", "/run/{endpoint_id}", "/v1/estimate/{endpoint_id}")
METHODS = ("get", "put", "post", "delete", "patch")
SECURITY_SCHEMES: dict[str, Schema] = {
    "tenantKey": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "A tenant key issued by the gateway: `Key sgw_<id>:<secret>` (or `Bearer <key>`).",
    },
    "adminToken": {"type": "http", "scheme": "bearer", "description": "GATEWAY_ADMIN_TOKEN."},
    "uploadToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An upload token from /rest/storage/auth/token.",
    },
}
DESCRIPTION = (
    "fal's queue and run protocol for Seedance 1.5 Pro, served by seedance-gateway, with the gateway's operator "
    "(`/admin`) and tenant (`/v1`) APIs. Errors are in fal's two shapes: a 422 detail list, and "
    '`{"detail", "error_type"}` with `X-Fal-Error-Type` for every other error. fal\'s per-endpoint documents are '
    "at `/openapi/queue/openapi.json?endpoint_id=<endpoint id>`."
)


def shape_document(document: dict[str, Any], *, proxy_path: str) -> dict[str, Any]:
    """The whole document, from Litestar's ``document`` (left unchanged)."""
    shaped = copy.deepcopy(document)
    shaped["info"]["description"] = DESCRIPTION
    paths: dict[str, Any] = shaped.setdefault("paths", {})
    for generic in GENERIC_PATHS:
        paths.pop(generic, None)
    for path, item in paths.items():
        for method in METHODS:
            if method in item:
                item[method] = _shaped_operation(method, path, item[method])
    paths.update(fal_paths())
    paths.update(proxy_paths(proxy_path))
    shaped["paths"] = dict(sorted(paths.items()))
    components = shaped.setdefault("components", {})
    schemas: dict[str, Schema] = components.setdefault("schemas", {})
    merge(schemas, model_components(INPUT_MODELS.values()))
    merge(schemas, model_components([SeedanceOutput, *GATEWAY_BODIES, *FAL_BODIES], responses=True))
    merge(schemas, adapter_component(TypeAdapter(QueueStatus), "QueueStatus"))
    merge(schemas, {"TenantPatch": _tenant_patch(schemas["TenantCreate"])})
    components["schemas"] = dict(sorted(schemas.items()))
    components["headers"] = header_components()
    components["securitySchemes"] = SECURITY_SCHEMES
    return shaped


def _shaped_operation(method: str, path: str, operation: dict[str, Any]) -> dict[str, Any]:
    key = f"{method.upper()} {path}"
    if path == document_route().path:
        return {**operation, **document_route().operation}
    admin = path.startswith("/admin/")
    parameters = operation.get("parameters", [])
    takes_input = any(p["in"] == "query" for p in parameters) or "requestBody" in operation
    statuses = {*(ADMIN_ERRORS if admin else TENANT_ERRORS), *EXTRA_ERRORS.get(key, ())}
    if any(p["in"] == "path" for p in parameters):
        statuses.add(404)
    if takes_input:
        statuses.add(422)
    if key in PUBLIC_ROUTES:
        statuses = set(PUBLIC_ROUTES[key])
    success = {code: r for code, r in operation.get("responses", {}).items() if code.startswith("2")}
    if key in SUCCESS_BODIES:
        code, name, description = SUCCESS_BODIES[key]
        schema = ref(name) if isinstance(name, str) else name
        success = {code: json_response(description, schema)}
    for response in success.values():
        response["headers"] = headers()
    if key in REQUEST_BODIES:
        operation["requestBody"] = REQUEST_BODIES[key]
    operation["responses"] = {**success, **errors(statuses)}
    if key not in PUBLIC_ROUTES:
        scheme = "adminToken" if admin else "uploadToken" if path.startswith("/cdn/") else "tenantKey"
        operation["security"] = [{scheme: []}] if key != "PUT /rest/storage/uploads/{grant_id}" else [{}, {scheme: []}]
    return operation


def _tenant_patch(create: Schema) -> Schema:
    """An RFC 7396 merge patch of a tenant: TenantCreate's fields but ``id``, none required; an object field may be
    a partial object (merged) or null (removed)."""
    properties: dict[str, Schema] = {}
    for name, field in create["properties"].items():
        if name == "id":
            continue
        if field.get("type") in {"string", "boolean"}:
            properties[name] = {k: v for k, v in field.items() if k != "default"}
        else:
            described = field.get("description", name.capitalize())
            properties[name] = {"type": ["object", "null"], "description": f"{described} (merged; null removes it)"}
    return {
        "title": "TenantPatch",
        "type": "object",
        "description": "An RFC 7396 merge patch of the tenant's patchable fields.",
        "properties": properties,
        "additionalProperties": False,
    }
