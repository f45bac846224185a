"""Schemathesis cases from the committed OpenAPI document, sent to an in-process gateway, and the checks on answers:
no 5xx, errors in fal's shape, and every answer as the document says (its status documented, its body conforming
to that response's schema, its content type and its required headers)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err

from tests.support.endpoints import I2V_INPUT, T2V_INPUT

Operation = APIOperation[Any, Any, Any, Any]
AnyCase = Case[Any]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
# What schemathesis checks of every answer, against the document.
CONFORMANCE = (
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
)
# Headers schemathesis adds that mean nothing to an in-process ASGI call.
DROPPED_HEADERS = frozenset({"connection", "accept-encoding"})
SSE = "text/event-stream"
# fal's own answer to cancelling a finished request: a 400 whose body is a status, not an error (docs/protocol.md).
ALREADY_COMPLETED = {"status": "ALREADY_COMPLETED"}
PROXY_PATH = "/api/fal/proxy"  # GATEWAY_PROXY_PATH's default, which the committed document describes
PROXY_REFUSALS = frozenset({400, 412})  # docs/protocol.md §8


class Role(StrEnum):
    """Who calls an operation: the operator (admin token), a tenant (its key), or anyone."""

    ADMIN = "admin"
    TENANT = "tenant"
    PUBLIC = "public"


def load_operations() -> list[Operation]:
    """Every operation of the committed document, in its order."""
    schema = schemathesis.openapi.from_path(str(SCHEMA_PATH))
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    return operations


def label(operation: Operation) -> str:
    return f"{operation.method.upper()} {operation.path}"


def role_of(operation: Operation) -> Role:
    """Whose credentials the operation takes (the document's security: none for the public routes)."""
    if operation.path.startswith("/admin/"):
        return Role.ADMIN
    if operation.path.startswith(("/.well-known/", "/openapi/")):
        return Role.PUBLIC
    return Role.TENANT


def has_negatives(operation: Operation) -> bool:
    """Whether schemathesis can make a schema-violating case: a string path parameter admits every value, so it
    takes a query or header parameter, or a body."""
    return any(p.location in {"query", "header"} for p in operation.iter_parameters()) or bool(list(operation.body))


def path_parameter_names(operation: Operation) -> list[str]:
    return [p.name for p in operation.iter_parameters() if p.location == "path"]


def takes_request_id(operation: Operation) -> bool:
    """Whether a real request id can be part of ``operation``'s path, or its answer lists requests."""
    return "request_id" in path_parameter_names(operation) or operation.path.endswith("/requests")


@dataclass(frozen=True)
class Known:
    """Values the gateway under test really holds, so that some cases reach past the 404 of an unknown id."""

    tenant_id: str
    key_id: str
    request_id: str
    app: str

    def path_values(self, operation: Operation) -> dict[str, list[str]]:
        """For each path parameter of ``operation``, the real values worth sending."""
        values = {
            "tenant_id": [self.tenant_id],
            "key_id": [self.key_id],
            "request_id": [self.request_id],
        }
        return {name: values[name] for name in path_parameter_names(operation) if values.get(name)}


def submit_bodies() -> st.SearchStrategy[Any]:
    """More bodies for the submit-like operations than the document's schema makes: the endpoints' own inputs,
    mutated field by field, and arbitrary JSON."""
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner))
    field_values = {
        "prompt": st.text(max_size=40) | anything,
        "image_url": st.sampled_from(["https://example.com/cat.png", "ftp://x", "http://127.0.0.1/a.png"]) | anything,
        "aspect_ratio": st.sampled_from(["16:9", "9:16", "1:1", "21:9", "0:0"]) | anything,
        "resolution": st.sampled_from(["480p", "720p", "1080p", "4k"]) | anything,
        "duration": st.sampled_from(["5", "10", "12", "0", "-1"]) | st.integers() | anything,
        "camera_fixed": st.booleans() | anything,
        "seed": st.integers() | anything,
        "enable_safety_checker": st.booleans() | anything,
        "generate_audio": st.booleans() | anything,
    }
    inputs = st.sampled_from([T2V_INPUT, I2V_INPUT]).flatmap(
        lambda base: st.fixed_dictionaries(
            {}, optional={name: st.just(value) | field_values[name] for name, value in base.items()}
        ).map(lambda fields: {**base, **fields})
    )
    mutated = st.fixed_dictionaries({}, optional=field_values)
    return st.one_of(st.sampled_from([T2V_INPUT, I2V_INPUT]), inputs, mutated, anything)


def cases(operation: Operation, *, headers: Mapping[str, str], known: Known) -> st.SearchStrategy[AnyCase]:
    """Positive and (where there can be any) negative cases of ``operation``, about half of them on real path
    values."""
    names, values = path_parameter_names(operation), known.path_values(operation)
    real_paths = (
        [{name: vs[i % len(vs)] for name, vs in values.items()} for i in range(max(map(len, values.values())))]
        if names and set(values) == set(names)
        else []
    )
    modes = [GenerationMode.POSITIVE, *([GenerationMode.NEGATIVE] if has_negatives(operation) else [])]
    strategies: list[st.SearchStrategy[AnyCase]] = []
    for mode in modes:

        def on_path(path: dict[str, str], mode: GenerationMode = mode) -> st.SearchStrategy[AnyCase]:
            return operation.as_strategy(generation_mode=mode, headers=dict(headers), path_parameters=path)

        if real_paths:  # first: Hypothesis leans towards the first branch, and real ids reach the deeper code
            strategies.append(st.sampled_from(real_paths).flatmap(on_path))
        strategies.append(operation.as_strategy(generation_mode=mode, headers=dict(headers)))
    return st.one_of(strategies)


def wants_submit_body(operation: Operation) -> bool:
    """The submit-like operations: those whose body is a Seedance input."""
    return operation.method.lower() == "post" and operation.path.endswith(("/image-to-video", "/text-to-video"))


def _query_value(value: Any) -> Any:
    """A query value httpx can send: scalars as text, a list of scalars repeated, anything else as its JSON."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str | int | float):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
        return value
    return json.dumps(value)


def request_of(client: httpx.AsyncClient, case: AnyCase, body: Any = None) -> httpx.Request:
    """The request ``client`` sends for ``case``; ``body``, when given, is the JSON sent instead of the case's."""
    kwargs = case.as_transport_kwargs(base_url="")
    headers = {k: str(v) for k, v in kwargs.get("headers", {}).items() if k.lower() not in DROPPED_HEADERS}
    params = {str(k): _query_value(v) for k, v in (kwargs.get("params") or {}).items()}
    content: bytes | None = None
    if body is not None:
        content = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif "json" in kwargs:
        content = json.dumps(kwargs["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        content = data if isinstance(data, bytes) else str(data).encode()
    return client.build_request(case.method.upper(), kwargs["url"], params=params, headers=headers, content=content)


def describe(request: httpx.Request, response: httpx.Response) -> str:
    sent = request.content[:500].decode(errors="replace")
    return f"{request.method} {request.url} body={sent!r} -> {response.status_code} {response.text[:500]!r}"


def failures(case: AnyCase, response: httpx.Response) -> list[str]:
    """What is wrong with the answer to ``case``: :func:`answer_failures`, and whatever the document does not allow
    (``CONFORMANCE``)."""
    problems = answer_failures(response)
    try:
        case.validate_response(response, checks=list(CONFORMANCE))
    except FailureGroup as group:
        problems += [f"not as documented: {failure.title}: {failure.message[:800]}" for failure in group.exceptions]
    except AssertionError as failure:  # a single failure is raised on its own
        problems.append(f"not as documented: {str(failure)[:800]}")
    return problems


def answer_failures(response: httpx.Response) -> list[str]:
    """What is wrong with any answer: a 5xx, a body that is not JSON (an event stream excepted), an error body not
    in fal's shape."""
    problems: list[str] = []
    if response.status_code >= 500:
        problems.append(f"a 5xx answer {response.status_code} {response.text[:300]!r}")
    if response.headers.get("content-type", "").startswith(SSE) and response.status_code < 400:
        return problems
    try:
        body = response.json()
    except ValueError:
        return [*problems, f"a body that is not JSON: {response.text[:300]!r}"]
    if response.status_code in PROXY_REFUSALS and isinstance(body, str) and response.request.url.path == PROXY_PATH:
        return problems  # the server proxy's own refusals, a JSON string as @fal-ai/server-proxy answers them
    if response.status_code >= 400 and not _fal_error(body) and body != ALREADY_COMPLETED:
        problems.append(f"an error body not in fal's shape: {response.status_code} {response.text[:300]!r}")
    return problems


def _fal_error(body: Any) -> bool:
    """fal's request-error shape (``detail`` a message) or its validation shape (``detail`` a list of errors)."""
    if not isinstance(body, dict) or "detail" not in body:
        return False
    detail = body["detail"]
    if isinstance(detail, str):
        return True
    return isinstance(detail, Sequence) and all(
        isinstance(e, dict) and {"loc", "msg", "type"} <= e.keys() for e in detail
    )
