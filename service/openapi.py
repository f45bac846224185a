"""The gateway's OpenAPI document, generated from the app itself (``seedance-gateway openapi``).

The committed copy lives in ``openapi/openapi.json``; a test fails when it no longer matches the code.
"""

from __future__ import annotations

import json

from service.app import create_app
from service.config import Settings


def render_openapi() -> str:
    # Nothing connects while the app is only built, so placeholder settings describe the same routes.
    app = create_app(Settings(redis_url="redis://localhost:6379/0", fal_key="unused", admin_token="unused"))  # noqa: S106 - a placeholder
    return json.dumps(app.openapi_schema.to_schema(), indent=2, sort_keys=True) + "\n"
