"""The committed OpenAPI document matches the code (regenerate: `seedance-gateway openapi > openapi/openapi.json`)."""

from __future__ import annotations

import json
from pathlib import Path

from service.openapi import render_openapi

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_the_committed_openapi_document_is_current() -> None:
    assert COMMITTED.read_text() == render_openapi(), "run: uv run seedance-gateway openapi > openapi/openapi.json"


def test_the_document_describes_the_admin_and_tenant_apis() -> None:
    paths = json.loads(COMMITTED.read_text())["paths"]
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
