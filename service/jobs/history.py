"""The operator's view of requests (``/admin``, admin token): a tenant's request history and whole job records."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from service.domain.jobs import Job
from service.domain.tenants import iso
from service.errors import NotFound
from service.jobs.store import JobStore
from service.paging import Before, before_cursor
from service.tenants.auth import requires_admin
from service.tenants.schemas import RequestPage, RequestSummary

MAX_PAGE = 500


class RequestHistoryController(Controller):
    path = "/admin"
    guards = [requires_admin]  # noqa: RUF012 - Litestar reads this class attribute
    tags = ["admin"]  # noqa: RUF012

    @get("/tenants/{tenant_id:str}/requests")
    async def tenant_requests(
        self,
        tenant_id: FromPath[str],
        job_store: NamedDependency[JobStore],
        limit: FromQuery[int] = 50,
        before: Before = None,
    ) -> RequestPage:
        """The tenant's request history, newest first; kept after the tenant is deleted, until it expires. A full
        page carries the cursor of the next one (``next``, to pass as ``before``)."""
        size = max(1, min(limit, MAX_PAGE))
        jobs, cursor = await job_store.history(tenant_id, limit=size, before=before_cursor(before))
        return RequestPage(requests=[_summary(j) for j in jobs], next=cursor)

    @get("/requests/{request_id:str}")
    async def show_request(self, request_id: FromPath[str], job_store: NamedDependency[JobStore]) -> dict[str, Any]:
        """The whole job record: input, status, logs, result or error."""
        job = await job_store.get(request_id)
        if job is None:
            raise NotFound("Request not found", error_type="request_not_found")
        return {
            **_summary(job).model_dump(),
            "input": job.input,
            "logs": job.logs,
            "result": job.result,
            "error": job.error,
            "error_status": job.error_status,
            "error_body": job.error_body,
            "webhook_url": job.webhook_url,
            "inference_time": job.inference_time,
        }


def _summary(job: Job) -> RequestSummary:
    return RequestSummary(
        request_id=job.request_id,
        tenant_id=job.tenant_id,
        endpoint_id=job.endpoint_id,
        mode=job.mode.value,
        status=job.state.value,
        outcome=job.outcome.value if job.outcome else None,
        error_type=job.error_type,
        created_at=iso(job.created_at),
        completed_at=iso(job.completed_at),
    )
