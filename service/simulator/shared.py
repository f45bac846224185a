"""Simulator jobs shared through Redis, so that every gateway replica's embedded sandbox simulator answers for every
sandbox job, whichever replica submitted it (``service/upstream/sandbox.py``).

A job's progress is derived from its timestamps, so a job is fully described by its record: the submitting replica
writes it, every other call first reads it back into the local simulator (a cancel writes it again). The simulators
must then share a clock: the sandbox runs on wall-clock time.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import Any

import httpx
from redis.asyncio import Redis

from service import keys
from service.domain.endpoints import find_endpoint
from service.simulator.jobs import Failure, Job, Success
from service.simulator.state import SimulatorState

_REQUEST_PATH = re.compile(r"/?[^/]+/[^/]+/requests/(?P<request_id>[^/]+)(?:/[^/]+)?/?")


def encode_job(job: Job) -> str:
    outcome = asdict(job.outcome) | {"kind": "success" if isinstance(job.outcome, Success) else "failure"}
    return json.dumps(
        {
            "id": job.id,
            "endpoint": job.endpoint.id,
            "raw_input": job.raw_input,
            "outcome": outcome,
            "submitted_at": job.submitted_at,
            "queue_seconds": job.queue_seconds,
            "processing_seconds": job.processing_seconds,
            "log_lines": job.log_lines,
            "media_base_url": job.media_base_url,
            "cancelled_at": job.cancelled_at,
        }
    )


def decode_job(text: str | bytes) -> Job | None:
    spec: dict[str, Any] = json.loads(text)
    endpoint = find_endpoint(spec["endpoint"])
    if endpoint is None:
        return None
    values = dict(spec["outcome"])
    outcome: Success | Failure = Success(**values) if values.pop("kind") == "success" else Failure(**values)
    return Job(
        id=spec["id"],
        seq=0,
        endpoint=endpoint,
        raw_input=spec["raw_input"],
        outcome=outcome,
        submitted_at=spec["submitted_at"],
        queue_seconds=spec["queue_seconds"],
        processing_seconds=spec["processing_seconds"],
        log_lines=spec["log_lines"],
        media_base_url=spec["media_base_url"],
        cancelled_at=spec["cancelled_at"],
    )


class SharedJobsTransport(httpx.AsyncBaseTransport):
    """The in-process transport of a simulator whose jobs live in Redis for ``retention_seconds``."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, sim: SimulatorState, redis: Redis, *, retention_seconds: int
    ) -> None:
        self._inner, self._sim, self._redis, self._retention = inner, sim, redis, retention_seconds

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        match = _REQUEST_PATH.fullmatch(request.url.path)
        if match is not None:
            raw = await self._redis.get(keys.sandbox_job(match["request_id"]))
            job = decode_job(raw) if raw else None
            if job is not None:
                self._sim.adopt(job)
        response = await self._inner.handle_async_request(request)
        if request.method == "GET" or response.status_code >= 300:  # only a success changes a job
            return response
        body = await response.aread()
        request_id = match["request_id"] if match is not None else _request_id(body)
        job = self._sim.job(request_id) if request_id else None
        if job is not None:
            await self._redis.set(keys.sandbox_job(job.id), encode_job(job), ex=self._retention)
        return httpx.Response(response.status_code, headers=response.headers, content=body)


def _request_id(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    request_id = parsed.get("request_id") if isinstance(parsed, dict) else None
    return request_id if isinstance(request_id, str) else None
