"""Uploads with the real ``fal_client`` through the gateway, then image-to-video with the uploaded URL; prints JSON.

Started as a subprocess (``python -m tests.e2e.upload_scenarios REPOSITORY GATEWAY_URL [FILE]``) with FAL_KEY, the
two host variables and SSL_CERT_FILE in its environment, like ``fal_client_scenarios``. Uploads need the two
constants a Python user sets (README, "Uploads"): ``REST_URL`` and ``CDN_URL``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

import fal_client
import fal_client.client

from tests.support.endpoints import I2V

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64


def main(repository_name: str, gateway: str, path: str | None = None) -> dict[str, Any]:
    repository = cast("fal_client.client.UploadRepositoryId", repository_name)
    fal_client.client.REST_URL = f"{gateway}/rest"
    fal_client.client.CDN_URL = f"{gateway}/cdn"
    if path is None:
        url = fal_client.upload(PNG, "image/png", "frame.png", repository=repository, fallback_repository=[])
    else:
        Path(path).write_bytes(PNG)
        url = fal_client.upload_file(Path(path), repository=repository, fallback_repository=[])
    handle = fal_client.submit(I2V, arguments={"prompt": "a cat waves", "image_url": url, "seed": 21})
    return {"url": url, "result": handle.get(), "status": type(handle.status()).__name__}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
