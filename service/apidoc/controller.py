"""``GET /openapi/queue/openapi.json?endpoint_id=<id>``: fal's per-endpoint document, public like fal's."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from service.apidoc.endpoint_document import endpoint_document
from service.config import Settings
from service.errors import NotFound

DOCUMENT_PATH = "/openapi/queue/openapi.json"


@get(DOCUMENT_PATH, tags=["openapi"], sync_to_thread=False)
def endpoint_openapi(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings], endpoint_id: FromQuery[str]
) -> Response[dict[str, Any]]:
    """The document's server is the gateway's queue: ``GATEWAY_PUBLIC_URL``, else the request's own scheme and
    host (as in ``status_url``), followed by ``/queue``."""
    base = settings.public_url.rstrip("/") if settings.public_url else f"{request.url.scheme}://{request.url.netloc}"
    document = endpoint_document(endpoint_id, f"{base}/queue")
    if document is None:
        raise NotFound(f"Application '{endpoint_id}' not found", error_type="application_not_found")
    return Response(document, media_type="application/json")
