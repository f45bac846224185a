"""The domain is pure: nothing under ``service/domain/`` imports I/O libraries or the rest of ``service``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import service.domain

DOMAIN_DIR = Path(service.domain.__file__).parent
DOMAIN_PACKAGE = "service.domain"
FORBIDDEN_TOP_LEVEL = frozenset({"litestar", "redis", "httpx", "uvicorn", "structlog", "prometheus_client"})
DYNAMIC_IMPORTERS = frozenset({"__import__", "import_module"})


def module_name(path: Path) -> str:
    parts = path.relative_to(DOMAIN_DIR).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((DOMAIN_PACKAGE, *parts))


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def resolve_relative(module: str | None, level: int, current: str, package: bool) -> str:
    """The absolute module a ``from <dots><module> import ...`` in module ``current`` refers to."""
    base = current.split(".")
    # In a package's __init__, one dot is the package itself; in a module, one dot is its parent.
    drop = level - 1 if package else level
    if drop >= len(base):
        return "<beyond the top-level package>"
    anchor = base[: len(base) - drop]
    return ".".join([*anchor, module] if module else anchor)


def imported_modules(source: str, current: str, package: bool) -> list[tuple[int, str]]:
    """Every module ``source`` imports (``from m import n`` yields ``m`` and ``m.n``), with its line number."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = resolve_relative(node.module, node.level, current, package) if node.level else (node.module or "")
            found.append((node.lineno, target))
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            first = node.args[0] if node.args else None
            if name in DYNAMIC_IMPORTERS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((node.lineno, first.value))
    return found


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


def test_the_domain_modules_are_found() -> None:
    names = {module_name(path) for path in DOMAIN_FILES}

    assert {"service.domain", "service.domain.endpoints", "service.domain.schemas"} <= names


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=lambda p: str(p.relative_to(DOMAIN_DIR)))
def test_domain_module_is_pure(path: Path) -> None:
    found = violations(path.read_text(encoding="utf-8"), module_name(path), is_package(path))

    assert not found, f"{path} imports outside the pure domain: {found}"


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
