"""The simulator's unauthenticated ``/_sim`` control API: the HTTP twin of SimulatorState's test methods."""

from __future__ import annotations

from typing import Any

from litestar import Response, Router, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from pydantic import ValidationError

from service.simulator.faults import FaultRule
from service.simulator.queue import fal_json
from service.simulator.state import SimulatorState
from service.simulator.storage import storage_of


@get("/config", sync_to_thread=False)
def read_config(sim: NamedDependency[SimulatorState]) -> dict[str, Any]:
    return sim.config.public_view()


@post("/config", status_code=200, sync_to_thread=False)
def update_config(sim: NamedDependency[SimulatorState], data: JSONBody[dict[str, Any]]) -> Response[Any]:
    """Partial update: only the given fields change, and nothing changes if any of them is invalid."""
    try:
        config = sim.configure(**data)
    except ValidationError as exc:
        return _invalid(exc)
    return fal_json(config.public_view(), 200)


@get("/faults", sync_to_thread=False)
def list_faults(sim: NamedDependency[SimulatorState]) -> list[dict[str, Any]]:
    return sim.faults.snapshot()


@post("/faults", sync_to_thread=False)
def add_fault(sim: NamedDependency[SimulatorState], data: JSONBody[dict[str, Any]]) -> Response[Any]:
    try:
        rule = FaultRule.model_validate(data)
    except ValidationError as exc:
        return _invalid(exc)
    sim.add_fault(rule)
    return fal_json(rule.model_dump(mode="json"), 201)


@post("/reset", status_code=200, sync_to_thread=False)
def reset(sim: NamedDependency[SimulatorState]) -> dict[str, Any]:
    sim.reset()
    storage_of(sim).forget_files()
    return {"status": "reset", "config": sim.config.public_view()}


@get("/stats", sync_to_thread=False)
def stats(sim: NamedDependency[SimulatorState]) -> dict[str, Any]:
    return sim.stats()


def _invalid(exc: ValidationError) -> Response[Any]:
    # Context objects (e.g. the ValueError of a model validator) are not JSON, so only their messages are kept.
    return fal_json({"detail": exc.errors(include_url=False, include_context=False)}, 422)


control_router = Router(path="/_sim", route_handlers=[read_config, update_config, list_faults, add_fault, reset, stats])
