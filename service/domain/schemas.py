"""Seedance 1.5 Pro input and output schemas, exactly as fal publishes them (see shared seeds).

fal apps are FastAPI + pydantic, so validation here is pydantic's lax mode on the parsed JSON, and errors are
rendered the way FastAPI renders them: ``{"detail": [{"type", "loc": ["body", ...], "msg", "input", "ctx"}]}``.
Unknown fields are ignored (FastAPI's default) and dropped from the normalized input, so what is priced, cached and
forwarded is exactly what the schema defines.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.domain.endpoints import Endpoint, EndpointKind


class AspectRatio(StrEnum):
    R21_9 = "21:9"
    R16_9 = "16:9"
    R4_3 = "4:3"
    R1_1 = "1:1"
    R3_4 = "3:4"
    R9_16 = "9:16"
    AUTO = "auto"


class Resolution(StrEnum):
    P480 = "480p"
    P720 = "720p"
    P1080 = "1080p"


class Duration(StrEnum):
    S4 = "4"
    S5 = "5"
    S6 = "6"
    S7 = "7"
    S8 = "8"
    S9 = "9"
    S10 = "10"
    S11 = "11"
    S12 = "12"


class TextToVideoInput(BaseModel):
    """Input of ``fal-ai/bytedance/seedance/v1.5/pro/text-to-video``."""

    model_config = ConfigDict(frozen=True, extra="ignore", use_enum_values=False)

    prompt: str = Field(description="The text prompt used to generate the video")
    aspect_ratio: AspectRatio = Field(default=AspectRatio.R16_9, description="The aspect ratio of the generated video")
    resolution: Resolution = Field(default=Resolution.P720, description="Video resolution")
    duration: Duration = Field(default=Duration.S5, description="Duration of the video in seconds")
    camera_fixed: bool = Field(default=False, description="Whether to fix the camera position")
    seed: int | None = Field(default=None, description="Random seed to control video generation. Use -1 for random.")
    enable_safety_checker: bool = Field(default=True, description="If set to true, the safety checker will be enabled.")
    generate_audio: bool = Field(default=True, description="Whether to generate audio for the video")

    @property
    def duration_seconds(self) -> int:
        return int(self.duration.value)

    @property
    def is_seeded(self) -> bool:
        """True when the output is deterministic: an explicit seed that is not -1 ("random")."""
        return self.seed is not None and self.seed != -1


class ImageToVideoInput(TextToVideoInput):
    """Input of ``fal-ai/bytedance/seedance/v1.5/pro/image-to-video``: text-to-video plus the frame images."""

    image_url: str = Field(description="The URL of the image used to generate video")
    end_image_url: str | None = Field(default=None, description="The URL of the image the video ends with.")


SeedanceInput = TextToVideoInput | ImageToVideoInput

INPUT_MODELS: dict[EndpointKind, type[TextToVideoInput]] = {
    EndpointKind.TEXT_TO_VIDEO: TextToVideoInput,
    EndpointKind.IMAGE_TO_VIDEO: ImageToVideoInput,
}


class VideoFile(BaseModel):
    """fal's ``File`` type as Seedance returns it."""

    model_config = ConfigDict(extra="allow")

    url: str
    content_type: str | None = None
    file_name: str | None = None
    file_size: int | None = None


class SeedanceOutput(BaseModel):
    """Output of both endpoints: ``{"video": File, "seed": int}``."""

    model_config = ConfigDict(extra="allow")

    video: VideoFile
    seed: int


class InvalidInputError(Exception):
    """The request body does not satisfy the endpoint's schema. ``detail`` is FastAPI's error list."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(detail)} validation error(s)")
        self.detail = detail


def parse_input(endpoint: Endpoint, raw: bytes) -> TextToVideoInput:
    """Parse and validate a raw JSON body for ``endpoint``.

    Raises:
        InvalidInputError: with FastAPI-shaped error entries, for bad JSON or a body the schema rejects.
    """
    if not raw.strip():
        raise InvalidInputError([{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}])
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        pos = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "invalid encoding"
        raise InvalidInputError(
            [
                {
                    "type": "json_invalid",
                    "loc": ["body", pos],
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": reason},
                }
            ]
        ) from None
    return validate_input(endpoint, payload)


def validate_input(endpoint: Endpoint, payload: Any) -> TextToVideoInput:
    """Validate an already-parsed JSON value for ``endpoint`` (see :func:`parse_input`)."""
    model = INPUT_MODELS[endpoint.kind]
    if payload is None:  # FastAPI treats a JSON `null` body as no body at all
        raise InvalidInputError([{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}])
    if not isinstance(payload, dict):
        raise InvalidInputError(
            [
                {
                    "type": "model_attributes_type",
                    "loc": ["body"],
                    "msg": "Input should be a valid dictionary or object to extract fields from",
                    "input": _jsonable(payload),
                }
            ]
        )
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidInputError(_fastapi_errors(exc)) from None


def normalized_input(data: TextToVideoInput) -> dict[str, Any]:
    """The validated input with every default filled in and absent optionals left out: what is forwarded."""
    return data.model_dump(mode="json", exclude_none=True)


def _fastapi_errors(exc: ValidationError) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    for err in exc.errors(include_url=False):
        entry: dict[str, Any] = {
            "type": err["type"],
            "loc": ["body", *err["loc"]],
            "msg": err["msg"],
            "input": _jsonable(err.get("input")),
        }
        if "ctx" in err:
            entry["ctx"] = {k: _jsonable(v) for k, v in err["ctx"].items()}
        errors.append(entry)
    return errors


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
