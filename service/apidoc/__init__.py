"""The gateway's OpenAPI documents: the whole API (served at ``/schema``, committed as ``openapi/openapi.json``) and
fal's per-endpoint queue document (``GET /openapi/queue/openapi.json?endpoint_id=<id>``).

Litestar generates the document from the route handlers; ``shaping.py`` then replaces what generic routing cannot
say (one ``/queue/{fal_path}`` route serves every queue call) with one operation per real route and endpoint, built
from the same pydantic models that validate the requests (``service/domain/schemas.py``), and gives every operation
the errors the gateway really sends (``responses.py``).
"""
