"""Runs one scenario with the real, unmodified ``fal_client`` and prints what it saw as JSON.

Started as a subprocess (``python -m tests.e2e.fal_client_scenarios SCENARIO [ARG]`` from the repository root) by the
end-to-end tests, because ``fal_client`` reads FAL_RUN_HOST / FAL_QUEUE_RUN_HOST at import time. It is configured only
through its environment variables (FAL_KEY, the two hosts, SSL_CERT_FILE).
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from typing import Any

import fal_client

from tests.support.endpoints import I2V, I2V_INPUT, T2V

I2V_ARGS = {**I2V_INPUT, "seed": 11}
T2V_ARGS = {"prompt": "a red fox running through snow", "seed": 7}
# No seed: never answered from the cache, so it really runs (and can be cancelled while it does).
UNCACHED_ARGS = {"prompt": "a red fox running through snow"}


def _status_name(status: Any) -> str:
    return type(status).__name__


def submit_status_result() -> dict[str, Any]:
    handle = fal_client.submit(I2V, arguments=I2V_ARGS)
    first = fal_client.status(I2V, handle.request_id, with_logs=True)
    output = handle.get()
    return {
        "request_id": handle.request_id,
        "first_status": _status_name(first),
        "final_status": _status_name(handle.status(with_logs=True)),
        "result": output,
        "result_by_id": fal_client.result(I2V, handle.request_id),
    }


def _subscribe(with_logs: bool) -> dict[str, Any]:
    updates: list[dict[str, Any]] = []

    def on_update(update: Any) -> None:
        updates.append({"type": _status_name(update), "logs": getattr(update, "logs", None)})

    enqueued: list[str] = []
    output = fal_client.subscribe(
        T2V, arguments=T2V_ARGS, with_logs=with_logs, on_queue_update=on_update, on_enqueue=enqueued.append
    )
    return {"result": output, "updates": updates, "request_id": enqueued[0]}


def subscribe_with_logs() -> dict[str, Any]:
    return _subscribe(with_logs=True)


def subscribe_without_logs() -> dict[str, Any]:
    return _subscribe(with_logs=False)


def run() -> dict[str, Any]:
    return {"result": fal_client.run(T2V, arguments=T2V_ARGS)}


def _http_error(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        call()
    except fal_client.FalClientHTTPError as exc:
        return {"status_code": exc.status_code, "message": str(exc), "error_type": exc.error_type}
    return {"status_code": None}


def cancel_in_flight() -> dict[str, Any]:
    handle = fal_client.submit(T2V, arguments=UNCACHED_ARGS)
    handle.cancel()
    final = None
    for event in handle.iter_events(interval=0.05):
        final = event
    return {
        "request_id": handle.request_id,
        "final_status": _status_name(final),
        "error": getattr(final, "error", None),
        "error_type": getattr(final, "error_type", None),
        "result_error": _http_error(lambda: fal_client.result(T2V, handle.request_id)),
    }


def cancel_after_completion() -> dict[str, Any]:
    handle = fal_client.submit(T2V, arguments=UNCACHED_ARGS)
    handle.get()
    return {"cancel_error": _http_error(handle.cancel)}


def submit_only() -> dict[str, Any]:
    handles = [fal_client.submit(T2V, arguments={**T2V_ARGS, "seed": n}) for n in range(int(sys.argv[2]))]
    return {"request_ids": [h.request_id for h in handles]}


def results_of() -> dict[str, Any]:
    ids = json.loads(sys.argv[2])
    return {"results": [fal_client.result(T2V, rid) for rid in ids]}


def data_uri_frames() -> dict[str, Any]:
    """Image-to-video with both frames inline as ``data:`` URIs of 2 MB each (a 5.6 MB body), as a caller without
    storage would send them."""
    frame = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\0" * (2 * 1024 * 1024)).decode()
    arguments = {"prompt": "from one frame to the other", "image_url": frame, "end_image_url": frame}
    handle = fal_client.submit(I2V, arguments=arguments)
    return {"request_id": handle.request_id, "result": handle.get(), "body_bytes": len(json.dumps(arguments))}


def bad_key() -> dict[str, Any]:
    return _http_error(lambda: fal_client.submit(T2V, arguments=T2V_ARGS))


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    f.__name__: f
    for f in (
        submit_status_result,
        subscribe_with_logs,
        subscribe_without_logs,
        run,
        cancel_in_flight,
        cancel_after_completion,
        submit_only,
        results_of,
        bad_key,
        data_uri_frames,
    )
}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]]()))
