"""The API docs pages under ``/schema``, public like the document, with every script, style, icon and font they
load served by the gateway itself (``/schema/assets/...``, from the ``openapi-ui-bundles`` package) or the browser's
own, never from a CDN: they work in closed networks and air-gapped clusters.

``/schema`` and ``/schema/swagger`` are Swagger UI, ``/schema/redoc`` ReDoc, ``/schema/rapidoc`` RapiDoc; the document
is ``/schema/openapi.json`` (and ``/schema/openapi.yaml``, ``.yml``). Litestar's pages load their scripts from jsdelivr,
unpkg and cdn.redoc.ly and fonts from Google; ReDoc's bundle loads its logo from cdn.redoc.ly and RapiDoc's its fonts
from Google. So each page is pointed at the local copies, ReDoc's logo URL is rewritten to the package's copy as the
bundle is served, and RapiDoc is told not to load fonts. tests/e2e/test_docs_browser.py loads every page in a real
browser and fails on any request that is not to the gateway.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    RapidocRenderPlugin,
    RedocRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.params import FromPath
from openapi_ui_bundles import rapidoc, redoc, swagger_ui

from service.errors import NotFound

DOCS_PATH = "/schema"
ASSETS_PATH = f"{DOCS_PATH}/assets"
ASSET_MAX_AGE_SECONDS = 86_400


SWAGGER_UI, REDOC, RAPIDOC = swagger_ui.static_path, redoc.static_path, rapidoc.static_path
# The only files served: name -> (file in the installed package, media type).
ASSETS: Mapping[str, tuple[Path, str]] = MappingProxyType(
    {
        "swagger-ui-bundle.js": (SWAGGER_UI / "swagger-ui-bundle.js", "text/javascript"),
        "swagger-ui-standalone-preset.js": (SWAGGER_UI / "swagger-ui-standalone-preset.js", "text/javascript"),
        "swagger-ui.css": (SWAGGER_UI / "swagger-ui.css", "text/css"),
        "favicon-32x32.png": (SWAGGER_UI / "favicon-32x32.png", "image/png"),
        "redoc.standalone.js": (REDOC / "redoc.standalone.js", "text/javascript"),
        "redoc-logo-mini.svg": (REDOC / "logo-mini.svg", "image/svg+xml"),
        "rapidoc-min.js": (RAPIDOC / "rapidoc-min.js", "text/javascript"),
    }
)
# What is rewritten in a file as it is served: (found, replacement); a bundle without ``found`` is refused (500)
# rather than served with a request to a CDN in it.
REWRITES: Mapping[str, tuple[tuple[bytes, bytes], ...]] = MappingProxyType(
    {
        "redoc.standalone.js": (
            (b'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"', f'src:"{ASSETS_PATH}/redoc-logo-mini.svg"'.encode()),
        ),
    }
)


def asset_url(name: str) -> str:
    if name not in ASSETS:
        raise KeyError(name)
    return f"{ASSETS_PATH}/{name}"


def docs_pages() -> list[OpenAPIRenderPlugin]:
    """The render plugins of ``OpenAPIConfig``: Swagger UI is the root page; every asset URL is the gateway's own."""
    favicon = f"<link rel='icon' type='image/png' href='{asset_url('favicon-32x32.png')}'>"
    return [
        SwaggerRenderPlugin(
            path=["/", "/swagger"],
            js_url=asset_url("swagger-ui-bundle.js"),
            css_url=asset_url("swagger-ui.css"),
            standalone_preset_js_url=asset_url("swagger-ui-standalone-preset.js"),
            favicon=favicon,
        ),
        RedocRenderPlugin(path="/redoc", js_url=asset_url("redoc.standalone.js"), google_fonts=False, favicon=favicon),
        _LocalFontsRapidoc(path="/rapidoc", js_url=asset_url("rapidoc-min.js"), favicon=favicon),
        JsonRenderPlugin(path="/openapi.json"),
        YamlRenderPlugin(path=["/openapi.yaml", "/openapi.yml"]),
    ]


class _LocalFontsRapidoc(RapidocRenderPlugin):
    """RapiDoc with the browser's fonts: by default it loads Open Sans from Google."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        page = super().render(request, openapi_schema)
        if b"<rapi-doc " not in page:
            raise RuntimeError("Litestar's RapiDoc page has no <rapi-doc> element to configure")
        return page.replace(b"<rapi-doc ", b'<rapi-doc load-fonts="false" ', 1)


@functools.cache
def asset_content(name: str) -> bytes:
    """The file as served: read once, with its rewrites applied."""
    path, _ = ASSETS[name]
    content = path.read_bytes()
    for found, replacement in REWRITES.get(name, ()):
        if found not in content:
            raise RuntimeError(f"{name} of openapi-ui-bundles changed: {found!r} is not in it")
        content = content.replace(found, replacement)
    return content


@get(
    f"{ASSETS_PATH}/{{name:str}}",
    include_in_schema=False,
    sync_to_thread=False,
    cache_control=CacheControlHeader(public=True, max_age=ASSET_MAX_AGE_SECONDS),
)
def docs_asset(name: FromPath[str]) -> Response[bytes]:
    """One of the docs pages' files; nothing else (a fal-shaped 404)."""
    if name not in ASSETS:
        raise NotFound("Not found")
    return Response(asset_content(name), media_type=ASSETS[name][1])
