"""Pydantic models as OpenAPI component schemas: one JSON schema per model under the name the documents give it,
enums inlined into their fields (as fal's documents have them), and the OpenAPI 3.0 dialect fal's per-endpoint
documents use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from service.domain.schemas import INPUT_MODELS, ImageToVideoInput, SeedanceOutput, TextToVideoInput, VideoFile

REF_PREFIX = "#/components/schemas/"
Schema = dict[str, Any]
# The names fal gives the endpoints' models in its documents.
MODEL_NAMES: dict[type[BaseModel], str] = {
    TextToVideoInput: "BytedanceSeedanceV15ProTextToVideoInput",
    ImageToVideoInput: "BytedanceSeedanceV15ProImageToVideoInput",
    SeedanceOutput: "BytedanceSeedanceV15ProOutput",
    VideoFile: "File",
}
ENDPOINT_INPUTS = {kind: MODEL_NAMES[model] for kind, model in INPUT_MODELS.items()}


def ref(name: str) -> Schema:
    return {"$ref": REF_PREFIX + name}


def model_components(models: Iterable[type[BaseModel]], *, responses: bool = False) -> dict[str, Schema]:
    """The component schemas of ``models`` and of every model they use, keyed by name (``MODEL_NAMES`` or the class
    name). Input models are described as they validate, response models as they serialize (without defaults)."""
    mode: Literal["validation", "serialization"] = "serialization" if responses else "validation"
    listed: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [(model, mode) for model in models]
    if not listed:
        return {}
    _, top = models_json_schema(listed, ref_template=REF_PREFIX + "{model}")
    defs: dict[str, Schema] = top.get("$defs", {})
    renames = {model.__name__: name for model, name in MODEL_NAMES.items()}
    enums = {name: schema for name, schema in defs.items() if "enum" in schema}
    found: dict[str, Schema] = {}
    for name, schema in defs.items():
        if name in enums:
            continue
        shaped = _inline_enums(_renamed(schema, renames), enums)
        if responses:
            shaped = _without_defaults(shaped)
        final = renames.get(name, name)
        shaped["title"] = final
        if name in renames and "properties" in shaped:  # fal's models keep their fields' order (JSON keys are sorted)
            shaped["x-fal-order-properties"] = list(shaped["properties"])
        found[final] = shaped
    return found


def adapter_component(adapter: TypeAdapter[Any], name: str) -> dict[str, Schema]:
    """The component schemas of a type that is not a model (a discriminated union), itself under ``name``."""
    schema = adapter.json_schema(ref_template=REF_PREFIX + "{model}", mode="serialization")
    defs: dict[str, Schema] = schema.pop("$defs", {})
    found = {key: _without_defaults(value) for key, value in defs.items()}
    found[name] = _without_defaults(schema)
    return found


def merge(into: dict[str, Schema], extra: Mapping[str, Schema]) -> None:
    """Add ``extra`` to the components ``into``; the same name must mean the same schema."""
    for name, schema in extra.items():
        if name in into and into[name] != schema:
            raise ValueError(f"two different component schemas are named {name!r}")
        into[name] = schema


def _renamed(value: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        out = {k: _renamed(v, renames) for k, v in value.items()}
        target = out.get("$ref")
        if isinstance(target, str) and target.startswith(REF_PREFIX):
            name = target.removeprefix(REF_PREFIX)
            out["$ref"] = REF_PREFIX + renames.get(name, name)
        return out
    if isinstance(value, list):
        return [_renamed(v, renames) for v in value]
    return value


def _inline_enums(value: Any, enums: Mapping[str, Schema]) -> Any:
    """Every ``$ref`` to an enum replaced by the enum itself, merged with the field's own keys (default, title)."""
    if isinstance(value, dict):
        target = value.get("$ref")
        if isinstance(target, str) and target.removeprefix(REF_PREFIX) in enums:
            enum = dict(enums[target.removeprefix(REF_PREFIX)])
            enum.pop("title", None)
            enum.pop("description", None)
            return {**enum, **{k: v for k, v in value.items() if k != "$ref"}}
        return {k: _inline_enums(v, enums) for k, v in value.items()}
    if isinstance(value, list):
        return [_inline_enums(v, enums) for v in value]
    return value


def _without_defaults(value: Any) -> Any:
    """Defaults mean nothing in an answer: dropped (a model's ``None`` defaults would read as ``null`` answers)."""
    if isinstance(value, list):
        return [_without_defaults(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: Schema = {}
    for key, item in value.items():
        if key == "properties" and isinstance(item, dict):
            out[key] = {name: _without_defaults(field) for name, field in item.items()}
        elif key != "default":
            out[key] = _without_defaults(item)
    return out


def openapi_30(value: Any) -> Any:
    """A 3.1 schema in the 3.0 dialect: ``anyOf [X, null]`` is ``X`` with ``nullable``, ``const`` a one-value enum."""
    if isinstance(value, list):
        return [openapi_30(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: openapi_30(v) for k, v in value.items()}
    if "const" in out:
        out["enum"] = [out.pop("const")]
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1 and "$ref" not in rest[0]:
            out = {**rest[0], **out}
        else:
            out["anyOf"] = rest
        out["nullable"] = True
    return out
