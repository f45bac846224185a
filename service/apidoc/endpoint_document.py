"""fal's per-endpoint queue document (``https://fal.ai/api/openapi/queue/openapi.json?endpoint_id=<id>``), for the
gateway: the same shape (OpenAPI 3.0, the paths relative to the queue host, ``QueueStatus``, the endpoint's input
and output models, ``apiKeyAuth``), with ``servers`` pointing at the gateway's queue."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from pydantic import TypeAdapter

from service.apidoc.components import (
    ENDPOINT_INPUTS,
    MODEL_NAMES,
    Schema,
    adapter_component,
    model_components,
    openapi_30,
    ref,
)
from service.apidoc.fal_bodies import CancellationRequested, QueueStatus
from service.domain.endpoints import ENDPOINTS, Endpoint
from service.domain.schemas import INPUT_MODELS, SeedanceOutput

OPENAPI_VERSION = "3.0.4"
SECURITY: list[dict[str, list[str]]] = [{"apiKeyAuth": []}]


def endpoint_document(endpoint_id: str, queue_url: str) -> dict[str, Any] | None:
    """The document of ``endpoint_id`` with ``queue_url`` as its server, or None for an endpoint not served."""
    endpoint = ENDPOINTS.get(endpoint_id)
    if endpoint is None:
        return None
    document = copy.deepcopy(_document(endpoint.id))
    document["servers"] = [{"url": queue_url}]
    return document


@cache
def _document(endpoint_id: str) -> dict[str, Any]:
    endpoint = ENDPOINTS[endpoint_id]
    input_name, output_name = ENDPOINT_INPUTS[endpoint.kind], MODEL_NAMES[SeedanceOutput]
    schemas: dict[str, Schema] = {
        **adapter_component(TypeAdapter(QueueStatus), "QueueStatus"),
        **model_components([INPUT_MODELS[endpoint.kind]]),
        **model_components([SeedanceOutput, CancellationRequested], responses=True),
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"Queue OpenAPI for {endpoint.id}",
            "version": "1.0.0",
            "description": f"The OpenAPI schema for the {endpoint.id} queue, served by seedance-gateway.",
            "x-fal-metadata": {"endpointId": endpoint.id, "category": endpoint.kind.value},
        },
        "components": {
            "securitySchemes": {
                "apiKeyAuth": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "Fal Key (here: a tenant key issued by the gateway, `Key sgw_<id>:<secret>`)",
                }
            },
            "schemas": openapi_30(dict(sorted(schemas.items()))),
        },
        "paths": _paths(endpoint, input_name, output_name),
        "security": SECURITY,
    }


def _request_id() -> Schema:
    return {
        "name": "request_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "Request ID",
    }


def _json(description: str, name: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": ref(name)}}}


def _paths(endpoint: Endpoint, input_name: str, output_name: str) -> dict[str, Schema]:
    requests = f"/{endpoint.app}/requests/{{request_id}}"
    logs = {
        "name": "logs",
        "in": "query",
        "required": False,
        "schema": {"type": "number", "description": "Whether to include logs (`1`) in the response or not (`0`)."},
    }
    return {
        f"{requests}/status": {
            "get": {
                "parameters": [_request_id(), logs],
                "responses": {"200": _json("The request status.", "QueueStatus")},
            }
        },
        f"{requests}/cancel": {
            "put": {
                "parameters": [_request_id()],
                "responses": {"202": _json("The request was cancelled.", "CancellationRequested")},
            }
        },
        f"/{endpoint.id}": {
            "post": {
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref(input_name)}}},
                "responses": {"200": _json("The request status.", "QueueStatus")},
            }
        },
        requests: {
            "get": {
                "parameters": [_request_id()],
                "responses": {"200": _json("Result of the request.", output_name)},
            }
        },
    }
