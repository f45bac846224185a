"""The docs pages under /schema in a real headless Chromium against the gateway process: each renders the document
with nothing but the gateway's own files (the network here is closed, like many deployments), and without a key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.browser import PageLoad, chromium, load_page
from tests.support.e2e import Processes

pytestmark = pytest.mark.e2e
ENDPOINT_IDS = ("fal-ai/bytedance/seedance/v1.5/pro/image-to-video", "fal-ai/bytedance/seedance/v1.5/pro/text-to-video")
RENDER_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Page:
    path: str
    ready: str  # a JavaScript expression, true once the UI has rendered the document's operations
    text: str  # a JavaScript expression: the text the UI shows (never the inline document itself)
    operation: str  # how the UI shows today's GET /admin/audit


SWAGGER_READY = "document.querySelectorAll('.opblock').length > 0"
# RapiDoc renders into its element's shadow root, which document.body.innerText does not reach.
RAPIDOC_TEXT = "(document.querySelector('rapi-doc')?.shadowRoot?.querySelector('#the-main-body')?.innerText ?? '')"
PAGES = {
    "swagger": Page("/schema", SWAGGER_READY, "document.body.innerText", "/admin/audit"),
    "swagger-alias": Page("/schema/swagger", SWAGGER_READY, "document.body.innerText", "/admin/audit"),
    "redoc": Page(
        "/schema/redoc",
        "document.querySelectorAll('[data-section-id]').length > 0",
        "document.body.innerText",
        "/admin/audit",
    ),
    "rapidoc": Page("/schema/rapidoc", f"{RAPIDOC_TEXT}.includes('AuditLog')", RAPIDOC_TEXT, "AuditLog"),
}


@pytest.fixture(scope="module")
def browser() -> str:
    found = chromium()
    if found is None:
        pytest.skip("needs Chromium (not in CI)")
    return found


async def _load(processes: Processes, browser: str, page: Page, tmp_path: Path) -> PageLoad:
    return await load_page(
        browser,
        f"{processes.gw_url}{page.path}",
        ready=page.ready,
        text=page.text,
        profile=tmp_path / "profile",
        timeout=RENDER_TIMEOUT_SECONDS,
    )


@pytest.mark.parametrize("name", PAGES)
async def test_the_page_renders_the_document_from_the_gateways_own_files(
    processes: Processes, browser: str, name: str, tmp_path: Path
) -> None:
    load = await _load(processes, browser, PAGES[name], tmp_path)
    assert "seedance-gateway" in load.text
    assert PAGES[name].operation in load.text, "an operation of the document is shown"
    fetched = [url for url in load.requested if not url.startswith(("data:", "blob:"))]
    assert fetched, "the page and its assets were requested"
    assert all(url.startswith(f"{processes.gw_url}/") for url in fetched), fetched
    assert any(url.startswith(f"{processes.gw_url}/schema/assets/") for url in fetched), fetched
    assert not load.failed, load.failed
    assert all(status < 400 for status in load.statuses.values()), load.statuses
    assert not load.exceptions, load.exceptions


async def test_the_docs_page_shows_both_seedance_endpoints(processes: Processes, browser: str, tmp_path: Path) -> None:
    load = await _load(processes, browser, PAGES["swagger"], tmp_path)
    missing = [endpoint_id for endpoint_id in ENDPOINT_IDS if endpoint_id not in load.text]
    assert not missing, f"not on the rendered page: {missing}"
