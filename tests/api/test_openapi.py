"""The OpenAPI documents: the committed whole document matches the code (regenerate: `seedance-gateway openapi >
openapi/openapi.json`) and describes the real routes in the gateway's real shapes; fal's per-endpoint document is
served, public, for the two endpoints only. That every answer conforms to the document is the fuzz's job
(``test_fuzz.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from redis.asyncio import Redis
from schemathesis.core.result import Err

from service.config import Settings
from service.domain.schemas import ImageToVideoInput, TextToVideoInput
from service.openapi import render_openapi
from service.simulator.app import SimulatorState
from tests.support.endpoints import I2V, T2V
from tests.support.gateway import BASE_URL, Gateway, running_gateway

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
DOCUMENT = "/openapi/queue/openapi.json"
REQUESTS = "/queue/fal-ai/bytedance/requests/{request_id}"


def committed() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(COMMITTED.read_text())
    return loaded


def test_the_committed_openapi_document_is_current() -> None:
    assert COMMITTED.read_text() == render_openapi(), "run: uv run seedance-gateway openapi > openapi/openapi.json"


def test_the_document_describes_the_admin_and_tenant_apis() -> None:
    paths = committed()["paths"]
    for path in (
        "/admin/tenants",
        "/admin/tenants/{tenant_id}",
        "/admin/tenants/{tenant_id}/keys",
        "/admin/tenants/{tenant_id}/keys/{key_id}/rotate",
        "/admin/audit",
        "/v1/me",
    ):
        assert path in paths
    assert set(paths["/admin/tenants/{tenant_id}"]) >= {"get", "patch", "delete"}


def test_every_fal_route_has_an_operation_of_its_own_at_its_literal_path() -> None:
    paths = committed()["paths"]
    assert not [path for path in paths if "{fal_path}" in path or "{endpoint_id}" in path]
    for endpoint in (I2V, T2V):
        for prefix in ("/queue/", "/run/", "/v1/estimate/"):
            assert set(paths[prefix + endpoint]) == {"post"}, prefix + endpoint
    assert set(paths[REQUESTS]) == {"get"}
    assert set(paths[f"{REQUESTS}/status"]) == {"get"}
    assert set(paths[f"{REQUESTS}/status/stream"]) == {"get"}
    assert set(paths[f"{REQUESTS}/cancel"]) == {"put"}
    assert set(paths[f"{REQUESTS}/status/stream"]["get"]["responses"]["200"]["content"]) == {"text/event-stream"}


def test_the_submit_documents_the_webhook_the_forwarded_headers_and_the_answer_headers() -> None:
    submit = committed()["paths"][f"/queue/{I2V}"]["post"]
    names = {(p["in"], p["name"]) for p in submit["parameters"]}
    assert ("query", "fal_webhook") in names
    assert {n for i, n in names if i == "header"} >= {
        "X-Fal-Request-Timeout",
        "X-Fal-Queue-Priority",
        "X-Fal-Runner-Hint",
        "X-Fal-No-Retry",
        "X-Fal-Object-Lifecycle-Preference",
        "X-Fal-Store-IO",
    }
    answer = submit["responses"]["200"]
    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/QueueStatus"}
    assert set(answer["headers"]) >= {
        "x-fal-request-id",
        "x-gateway-cost-micros",
        "x-gateway-cache",
        "x-gateway-sandbox",
    }
    assert submit["responses"]["429"]["headers"]["Retry-After"] == {"$ref": "#/components/headers/Retry-After"}


@pytest.mark.parametrize(("endpoint", "model"), [(I2V, ImageToVideoInput), (T2V, TextToVideoInput)])
def test_the_input_is_the_validating_model_field_for_field(endpoint: str, model: Any) -> None:
    document = committed()
    body = document["paths"][f"/run/{endpoint}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    own = model.model_json_schema()
    assert schema["x-fal-order-properties"] == list(own["properties"])
    assert set(schema["properties"]) == set(own["properties"])
    assert schema["required"] == own["required"]
    assert schema["properties"]["duration"]["enum"] == [str(n) for n in range(4, 13)]
    assert schema["properties"]["resolution"] == {
        "enum": ["480p", "720p", "1080p"],
        "type": "string",
        "default": "720p",
        "description": "Video resolution - 480p for faster generation, 720p for balance, 1080p for higher quality",
    }
    assert ("image_url" in schema["required"]) is (endpoint == I2V)


def test_no_answer_is_in_litestars_error_shape_or_an_empty_schema() -> None:
    document = committed()
    assert "Validation Exception" not in json.dumps(document)  # Litestar's {"detail", "extra", "status_code"}
    for path, item in document["paths"].items():
        if path.startswith(("/api/fal/proxy", "/openapi/")):
            continue  # the proxy answers whatever its target route does; the document route is checked below
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                for media in response.get("content", {}).values():
                    schema = media["schema"]
                    assert schema not in ({}, {"type": "object", "additionalProperties": {}}), (method, path, status)


def test_the_errors_are_documented_as_the_gateway_sends_them() -> None:
    document = committed()
    schemas = document["components"]["schemas"]
    submit = document["paths"][f"/queue/{T2V}"]["post"]["responses"]
    assert submit["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HTTPValidationError"
    }
    assert set(schemas["BudgetExceededError"]["required"]) >= {"detail", "error_type", "limit_micros", "period_end"}
    assert {"rule", "field"} <= set(schemas["ForbiddenError"]["properties"])
    assert {"rule", "retry_after"} <= set(schemas["RateLimitedError"]["properties"])
    for status in ("400", "401", "402", "403", "404", "413", "429", "502", "503", "504"):
        assert "X-Fal-Error-Type" in document["paths"][f"/run/{T2V}"]["post"]["responses"][status]["headers"], status


async def test_fals_per_endpoint_document_is_public_and_points_at_the_gateways_queue(gateway: Gateway) -> None:
    for endpoint in (I2V, T2V):
        response = await gateway.client.get(DOCUMENT, params={"endpoint_id": endpoint})
        assert response.status_code == 200, response.text
        document = response.json()
        assert document["openapi"] == "3.0.4"
        assert document["servers"] == [{"url": f"{BASE_URL}/queue"}]
        assert document["info"]["x-fal-metadata"]["endpointId"] == endpoint
        assert set(document["paths"]) == {
            f"/{endpoint}",
            "/fal-ai/bytedance/requests/{request_id}",
            "/fal-ai/bytedance/requests/{request_id}/status",
            "/fal-ai/bytedance/requests/{request_id}/cancel",
        }
        schemas = document["components"]["schemas"]
        body = document["paths"][f"/{endpoint}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        model = schemas[body["$ref"].rsplit("/", 1)[1]]
        assert ("image_url" in model["required"]) is (endpoint == I2V)
        assert model["properties"]["seed"]["nullable"] is True  # OpenAPI 3.0: no "null" type
        assert set(schemas["QueueStatus"]) == {"oneOf", "discriminator"}


async def test_the_per_endpoint_documents_server_is_the_public_url_when_set(
    redis_client: Redis, sim: SimulatorState, settings: Settings
) -> None:
    public = settings.model_copy(update={"public_url": "https://gateway.example:8443/"})
    async with running_gateway(redis_client, sim, public) as gateway:
        response = await gateway.client.get(DOCUMENT, params={"endpoint_id": T2V})
    assert response.json()["servers"] == [{"url": "https://gateway.example:8443/queue"}]


async def test_another_endpoint_id_is_fals_404_and_a_missing_one_a_422(gateway: Gateway) -> None:
    unknown = await gateway.client.get(DOCUMENT, params={"endpoint_id": "fal-ai/flux/dev"})
    assert unknown.status_code == 404
    assert unknown.json() == {
        "detail": "Application 'fal-ai/flux/dev' not found",
        "error_type": "application_not_found",
    }
    assert unknown.headers["x-fal-error-type"] == "application_not_found"
    missing = await gateway.client.get(DOCUMENT)
    assert missing.status_code == 422
    assert [entry["loc"] for entry in missing.json()["detail"]] == [["query", "endpoint_id"]]


async def test_the_per_endpoint_document_loads_as_openapi_with_every_operation(
    gateway: Gateway, tmp_path: Path
) -> None:
    response = await gateway.client.get(DOCUMENT, params={"endpoint_id": I2V})
    saved = tmp_path / "openapi.json"
    saved.write_text(response.text)
    results = list(schemathesis.openapi.from_path(str(saved)).get_all_operations())
    assert not [r.err() for r in results if isinstance(r, Err)]
    assert len(results) == 4


async def test_the_document_served_at_schema_is_the_shaped_one(gateway: Gateway) -> None:
    response = await gateway.client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert response.json() == committed()
