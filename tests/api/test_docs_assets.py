"""The docs pages under /schema (service/docs_page.py): public, and every file they reference is the gateway's own.
tests/e2e/test_docs_browser.py renders them in a real browser."""

from __future__ import annotations

import json
import re

import pytest

from service.docs_page import ASSETS
from service.openapi import render_openapi
from tests.support.gateway import Gateway

PAGES = ["/schema", "/schema/swagger", "/schema/redoc", "/schema/rapidoc"]
DOCUMENTS = ["/schema/openapi.json", "/schema/openapi.yaml", "/schema/openapi.yml"]
REFERENCE = re.compile(r"""\b(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""")
NO_AUTH: list[dict[str, str]] = [{}, {"Authorization": "Key sgw_nobody:wrong"}, {"Authorization": "Bearer wrong"}]


@pytest.mark.parametrize("headers", NO_AUTH, ids=["no-key", "bad-key", "bad-admin-token"])
async def test_the_pages_and_the_document_are_public(gateway: Gateway, headers: dict[str, str]) -> None:
    for path in PAGES:
        page = await gateway.client.get(path, headers=headers)
        assert page.status_code == 200, (path, page.text[:300])
        assert page.headers["content-type"].startswith("text/html"), path
        assert "seedance-gateway" in page.text, path
    for path in DOCUMENTS:
        assert (await gateway.client.get(path, headers=headers)).status_code == 200, path


async def test_the_json_document_served_is_the_committed_one(gateway: Gateway) -> None:
    served = await gateway.client.get("/schema/openapi.json")
    assert served.json() == json.loads(render_openapi())


async def test_every_file_a_page_references_is_served_by_the_gateway(gateway: Gateway) -> None:
    referenced: set[str] = set()
    for path in PAGES:
        html = (await gateway.client.get(path)).text
        urls = REFERENCE.findall(html)
        assert urls, path
        assert all(url.startswith("/schema/") for url in urls), (path, urls)  # never another host, nor a CDN
        referenced |= set(urls)
    assert {url for url in referenced if url.startswith("/schema/assets/")} >= {
        "/schema/assets/swagger-ui-bundle.js",
        "/schema/assets/swagger-ui.css",
        "/schema/assets/redoc.standalone.js",
        "/schema/assets/rapidoc-min.js",
    }
    for url in sorted(referenced):
        response = await gateway.client.get(url)
        assert response.status_code == 200, url
        assert response.content, url
    for name, (_, media_type) in ASSETS.items():
        response = await gateway.client.get(f"/schema/assets/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(media_type), name
        assert "max-age=" in response.headers["cache-control"], name


async def test_the_redoc_bundle_is_served_without_its_cdn_logo(gateway: Gateway) -> None:
    bundle = (await gateway.client.get("/schema/assets/redoc.standalone.js")).text
    assert "cdn.redoc.ly" not in bundle
    assert '"/schema/assets/redoc-logo-mini.svg"' in bundle
    page = (await gateway.client.get("/schema/rapidoc")).text
    assert 'load-fonts="false"' in page, "RapiDoc would load its fonts from Google"


@pytest.mark.parametrize(
    "name", ["index.html", "__init__.py", "..%2f__init__.py", "swagger-ui-bundle.js.map", "%00", "a" * 2000]
)
async def test_only_the_listed_files_are_served_anything_else_is_a_fal_shaped_404(gateway: Gateway, name: str) -> None:
    response = await gateway.client.get(f"/schema/assets/{name}")
    assert response.status_code == 404, response.text[:300]
    body = response.json()
    assert isinstance(body["detail"], str)
    assert body["error_type"]
