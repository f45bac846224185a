"""FalClient builds each request's absolute URL itself (parsed once); it must be exactly the URL httpx would have
built from the relative path and params: the same path under any base URL, the query encoded by httpx's rules."""

from __future__ import annotations

import httpx
import pytest

from service.domain.endpoints import TEXT_TO_VIDEO
from service.metrics import Metrics
from service.upstream.fal import FalClient

WEBHOOK = {"fal_webhook": "https://gw.example/hooks/fal/a b?x=1&y=é+%2F", "x": "1"}


@pytest.mark.parametrize("base", ["http://sim", "http://sim/", "https://queue.fal.run", "http://127.0.0.1:81/pre/"])
async def test_every_operation_reaches_the_url_httpx_would_build(base: str) -> None:
    seen: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if request.method == "POST":
            return httpx.Response(200, json={"request_id": "up-1", "queue_position": 0})
        return httpx.Response(200, json={"status": "COMPLETED"} if request.url.path.endswith("/status") else {})

    async with httpx.AsyncClient(base_url=base, transport=httpx.MockTransport(answer)) as http:
        fal = FalClient(http, metrics=Metrics(), submit_timeout=5, submit_connect_retries=0)
        await fal.submit(TEXT_TO_VIDEO, {"prompt": "x"}, headers={}, query=WEBHOOK)
        await fal.submit(TEXT_TO_VIDEO, {"prompt": "x"}, headers={}, query={})
        await fal.status(TEXT_TO_VIDEO, "up-1")
        await fal.result(TEXT_TO_VIDEO, "up-1")
        await fal.cancel(TEXT_TO_VIDEO, "up-1")
        app = TEXT_TO_VIDEO.app
        expected = [
            http.build_request("POST", f"/{TEXT_TO_VIDEO.id}", params=WEBHOOK).url,
            http.build_request("POST", f"/{TEXT_TO_VIDEO.id}").url,
            http.build_request("GET", f"/{app}/requests/up-1/status", params={"logs": "1"}).url,
            http.build_request("GET", f"/{app}/requests/up-1").url,
            http.build_request("PUT", f"/{app}/requests/up-1/cancel").url,
        ]
    assert [str(url) for url in seen] == [str(url) for url in expected]
    assert [url.raw_path for url in seen] == [url.raw_path for url in expected]
