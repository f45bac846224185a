"""Litestar's ``OpenAPIConfig``, whose document is the shaped one (``shaping.py``): at ``/schema`` and every render
of it, and from ``app.openapi_schema.to_schema()`` (``seedance-gateway openapi``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import OpenAPI

from service.apidoc.shaping import shape_document

DEFAULT_PROXY_PATH = "/api/fal/proxy"


@dataclass
class ShapedOpenAPI(OpenAPI):
    """The document Litestar builds from the routes; it renders as ``shape_document`` makes it."""

    proxy_path: str = field(default=DEFAULT_PROXY_PATH)

    @property
    def _exclude_fields(self) -> set[str]:
        return {"proxy_path"}

    def to_schema(self) -> dict[str, Any]:
        return shape_document(super().to_schema(), proxy_path=self.proxy_path)


@dataclass
class GatewayOpenAPIConfig(OpenAPIConfig):
    """``OpenAPIConfig`` plus the proxy path (``GATEWAY_PROXY_PATH``) the document describes."""

    proxy_path: str = field(default=DEFAULT_PROXY_PATH)

    def to_openapi_schema(self) -> OpenAPI:
        base = super().to_openapi_schema()
        values = {f.name: getattr(base, f.name) for f in fields(base)}
        return ShapedOpenAPI(**values, proxy_path=self.proxy_path)
