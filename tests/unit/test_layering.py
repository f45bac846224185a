"""The package's shape: the domain is pure, the layers of ``service`` only import downwards, its modules import one
another without cycles, and none of them is too long. The rules themselves live in ``layering_rules.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

import service
import service.domain
from tests.unit.layering_rules import (
    build_graph,
    cycle_report,
    cycles,
    graph_names,
    imported_modules,
    layer_of,
    layer_table,
    layer_violations,
    resolve_relative,
    too_long,
)

SERVICE_DIR = Path(service.__file__).parent
SOURCE_ROOT = SERVICE_DIR.parent
DOMAIN_DIR = Path(service.domain.__file__).parent
DOMAIN_PACKAGE = "service.domain"
FORBIDDEN_TOP_LEVEL = frozenset({"litestar", "redis", "httpx", "uvicorn", "structlog", "prometheus_client"})


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def is_forbidden(module: str) -> bool:
    top = module.split(".", maxsplit=1)[0]
    if top in FORBIDDEN_TOP_LEVEL:
        return True
    if top != "service":
        return False
    # ``from service import domain`` yields both "service" and "service.domain": the bare package is harmless.
    return module not in {"service", DOMAIN_PACKAGE} and not module.startswith(DOMAIN_PACKAGE + ".")


def violations(source: str, current: str = "service.domain.example", package: bool = False) -> list[str]:
    return [f"{line}: {mod}" for line, mod in imported_modules(source, current, package) if is_forbidden(mod)]


DOMAIN_FILES = sorted(DOMAIN_DIR.rglob("*.py"))
SERVICE_FILES = sorted(SERVICE_DIR.rglob("*.py"))
MAX_LINES = 300


def service_graph() -> dict[str, set[str]]:
    """The module graph of ``service`` as the tree stands, counting every import, lazy ones inside functions too."""
    imports: dict[str, set[str]] = {}
    for path in SERVICE_FILES:
        name = module_name(path)
        imports[name] = graph_names(path.read_text(encoding="utf-8"), name, is_package(path))
    return build_graph(imports)


def test_the_domain_modules_are_found() -> None:
    names = {module_name(path) for path in DOMAIN_FILES}

    assert {"service.domain", "service.domain.endpoints", "service.domain.schemas"} <= names


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=lambda p: str(p.relative_to(DOMAIN_DIR)))
def test_domain_module_is_pure(path: Path) -> None:
    found = violations(path.read_text(encoding="utf-8"), module_name(path), is_package(path))

    assert not found, f"{path} imports outside the pure domain: {found}"


def test_the_service_graph_is_found() -> None:
    graph = service_graph()

    assert {"service", "service.domain", "service.jobs", "service.cache", "service.tenants"} <= set(graph)
    assert any(graph.values()), "no imports between the modules of service were found"


def test_service_layers_only_import_downwards() -> None:
    graph = service_graph()
    found = layer_violations(graph)

    listing = "\n  ".join(found)
    assert not found, f"imports against the layering ({len(found)}):\n  {listing}\nlayers:\n{layer_table(graph)}"


def test_service_modules_import_one_another_without_cycles() -> None:
    found = cycle_report(service_graph())

    listing = "\n  ".join(found)
    assert not found, f"import cycles among the modules of service ({len(found)}):\n  {listing}"


def test_no_service_module_is_too_long() -> None:
    lines = {
        path.relative_to(SOURCE_ROOT).as_posix(): len(path.read_text("utf-8").splitlines()) for path in SERVICE_FILES
    }
    found = too_long(lines, MAX_LINES)

    listing = "\n  ".join(found)
    assert not found, f"modules of service over {MAX_LINES} lines ({len(found)}):\n  {listing}"


# --- the checker itself --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "import litestar",
        "import redis.asyncio",
        "import httpx as h",
        "import uvicorn",
        "import structlog",
        "import prometheus_client",
        "from litestar import Litestar",
        "from redis.asyncio import Redis",
        "from prometheus_client import Counter",
        "import service.errors",
        "import service.keys as keys",
        "from service import errors",
        "from service import domain, keys",
        "from service.errors import NotFound",
        "from service.upstream.fal import FalClient",
        "from .. import errors",
        "from ..errors import NotFound",
        "import json, httpx",
        "def f():\n    import redis",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from litestar import Request",
        "import importlib\nimportlib.import_module('httpx')",
        "__import__('structlog')",
        "from service.domainx import thing",
    ],
)
def test_the_checker_catches_impure_imports(source: str) -> None:
    assert violations(source)


@pytest.mark.parametrize(
    "source",
    [
        "import json",
        "from __future__ import annotations",
        "from pydantic import BaseModel",
        "import service.domain.endpoints",
        "from service.domain.endpoints import Endpoint",
        "from service.domain import schemas",
        "from service import domain",
        "from . import endpoints",
        "from .endpoints import Endpoint",
        "import redislite_is_not_redis",
        "import httpx_like",
    ],
)
def test_the_checker_allows_pure_imports(source: str) -> None:
    assert violations(source) == []


@pytest.mark.parametrize(
    ("module", "level", "current", "package", "expected"),
    [
        ("endpoints", 1, "service.domain.schemas", False, "service.domain.endpoints"),
        (None, 1, "service.domain.schemas", False, "service.domain"),
        (None, 2, "service.domain.schemas", False, "service"),
        ("errors", 2, "service.domain.schemas", False, "service.errors"),
        ("schemas", 1, "service.domain", True, "service.domain.schemas"),
        ("keys", 2, "service.domain", True, "service.keys"),
        (None, 4, "service.domain.schemas", False, "<beyond the top-level package>"),
    ],
)
def test_relative_imports_are_resolved(
    module: str | None, level: int, current: str, package: bool, expected: str
) -> None:
    assert resolve_relative(module, level, current, package) == expected


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        *(
            (low, "service.jobs.service")
            for low in ("service.cache.store", "service.budgets.ledger", "service.webhooks")
        ),
        *((low, "service.jobs") for low in ("service.tenants.auth", "service.upstream.fal", "service.brand_new")),
        ("service.domain.jobs", "service.keys"),
        ("service", "service.config"),
        ("service.keys", "service.tenants.store"),
        ("service.tenants.auth", "service.cache.store"),
        ("service.jobs.tracker", "service.app"),
        ("service.app", "service.cli"),
        ("service.container", "service.admin_cli.runner"),
        ("service.cache.service", "service.budgets.ledger"),
        ("service.budgets", "service.cache"),
        ("service.webhooks.sender", "service.budgets.usage"),
    ],
)
def test_the_layer_checker_catches_upward_and_peer_imports(importer: str, imported: str) -> None:
    (found,) = layer_violations({importer: {imported}, imported: set()})

    assert importer in found
    assert imported in found


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("service.cli", "service.devserver"),
        ("service.admin_cli.commands", "service.app"),
        ("service.app", "service.jobs.controller"),
        ("service.jobs.service", "service.cache.service"),
        ("service.jobs.tracker", "service.jobs.store"),
        ("service.cache.service", "service.cache.store"),
        ("service.budgets.ledger", "service.tenants.auth"),
        ("service.tenants.store", "service.keys"),
        ("service.upstream.fal", "service.metrics"),
        ("service.brand_new", "service.errors"),
        ("service.jobs.store", "service.domain.jobs"),
        ("service.domain.schemas", "service.domain.endpoints"),
        ("service.jobs", "service"),
    ],
)
def test_the_layer_checker_allows_downward_and_sideways_imports(importer: str, imported: str) -> None:
    assert layer_violations({importer: {imported}, imported: set()}) == []


def test_unlisted_components_are_infrastructure() -> None:
    assert [layer_of(c) for c in ("service.brand_new", "service.webhooks", "service.admin_cli", "service")] == [
        1,
        3,
        6,
        0,
    ]
    assert "L3 features: service.cache, service.webhooks" in layer_table({"service.cache.store", "service.webhooks"})


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"b", "c"}}, []),
        ({"a": {"b"}, "b": {"c", "d"}, "c": {"d"}, "d": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b", "a"]]),
        ({"z": {"a"}, "a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c", "a"]]),
        ({"a": {"b", "c"}, "b": {"c"}, "c": {"a"}}, [["a", "c", "a"]]),
        ({"a": {"b"}, "b": {"a"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}}, [["a", "b", "a"], ["d", "e", "d"]]),
    ],
)
def test_the_cycle_checker_finds_one_cycle_per_tangle(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(graph) == expected


def test_the_cycle_report_names_the_rest_of_a_tangle() -> None:
    assert cycle_report({"a": {"b", "c"}, "b": {"c"}, "c": {"a"}}) == ["a -> c -> a (tangled with it: b)"]


MODULES = ("service", "service.keys", "service.devserver", "service.jobs", "service.jobs.store", "service.jobs.tracker")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import json\nfrom litestar import Litestar", set()),
        ("import service.jobs.store", {"service.jobs.store"}),
        ("from service.jobs import store", {"service.jobs.store"}),
        ("from service.jobs import JobService", {"service.jobs"}),
        ("from service.jobs import store, JobService", {"service.jobs.store", "service.jobs"}),
        ("from service.jobs.store import JobStore, DueSchedule", {"service.jobs.store"}),
        ("from service import keys", {"service.keys"}),
        ("from .store import JobStore", {"service.jobs.store"}),
        ("from . import store", {"service.jobs.store"}),
        ("from service.jobs.tracker import Tracker", set()),
        ("def f():\n    from service.devserver import run_dev", {"service.devserver"}),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from service import keys", {"service.keys"}),
        ("import importlib\nimportlib.import_module('service.keys')", {"service.keys"}),
    ],
)
def test_imports_become_edges_to_concrete_modules(source: str, expected: set[str]) -> None:
    current = "service.jobs.tracker"
    imports = {module: set[str]() for module in MODULES} | {current: graph_names(source, current, package=False)}

    assert build_graph(imports)[current] == expected
