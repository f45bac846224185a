"""The collaborators of fal's queue, run and estimate routes, resolved as one dependency per request.

Litestar resolves two or more dependencies of the same level in an anyio task group: a status poll with four
dependencies spent about 15 % of its CPU starting and joining that group (py-spy at 64 connections). These routes
therefore declare a single dependency, ``call``: the caller's principal together with the collaborators.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.budgets.ledger import BudgetLedger
from service.config import Settings
from service.drain import Drain
from service.jobs.cancel import Cancellation
from service.jobs.handover import RunHandovers
from service.jobs.queries import JobQueries
from service.jobs.submit import SubmitPipeline
from service.metrics import Metrics
from service.tenants.auth import Authenticator, Principal


@dataclass(frozen=True, slots=True)
class JobApi:
    authenticator: Authenticator
    submits: SubmitPipeline
    queries: JobQueries
    cancellation: Cancellation
    ledger: BudgetLedger
    settings: Settings
    metrics: Metrics
    handovers: RunHandovers
    drain: Drain


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated request to the job routes: who calls, and what serves it."""

    principal: Principal
    api: JobApi
