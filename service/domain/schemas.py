"""Seedance 1.5 Pro input and output schemas, exactly as fal publishes them (see shared seeds).

fal apps are FastAPI + pydantic, so validation here is pydantic's lax mode on the parsed JSON, and errors are
rendered the way FastAPI renders them: ``{"detail": [{"type", "loc": ["body", ...], "msg", "input", "ctx"}]}``.
Unknown fields are ignored (FastAPI's default) and dropped from the normalized input, so what is priced, cached and
forwarded is exactly what the schema defines.

Stricter than fal where fal would only fail later (or pay for nothing): a body nested deeper than
``MAX_JSON_DEPTH`` is refused before it is decoded (found by a linear scan, so it can never exhaust the stack);
``image_url`` and ``end_image_url`` must be ``http(s)`` URLs with a host or ``data:`` URIs; ``seed`` is -1 or
within 0..2^32-1.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from enum import StrEnum
from itertools import accumulate
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

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


MAX_JSON_DEPTH = 64
MAX_SEED = 2**32 - 1
URL_SCHEMES = frozenset({"http", "https"})


def _image_url(value: str) -> str:
    """An ``http(s)`` URL with a host, or a ``data:`` URI, kept exactly as given; otherwise pydantic's URL errors."""
    if not value:
        raise _url_error("input is empty")
    if value[:5].lower() == "data:":
        if "," not in value:
            raise _url_error("data URI without a comma")
        return value
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises for a port that is not a number in 0..65535
    except ValueError:
        raise _url_error("invalid URL") from None
    if not parts.scheme:
        raise _url_error("relative URL without a base")
    if parts.scheme.lower() not in URL_SCHEMES:
        expected = {"expected_schemes": "'http', 'https' or 'data'"}
        raise PydanticCustomError("url_scheme", "URL scheme should be {expected_schemes}", expected)
    if not parts.hostname:
        raise _url_error("empty host")
    if "\\" in value or any(c.isspace() or unicodedata.category(c)[0] in {"C", "Z"} for c in value):
        raise _url_error("invalid character in URL")  # controls, whitespace, format characters; backslashes
    return value


def _url_error(reason: str) -> PydanticCustomError:
    return PydanticCustomError("url_parsing", "Input should be a valid URL, {error}", {"error": reason})


ImageUrl = Annotated[str, AfterValidator(_image_url)]


T2V_PROMPT_EXAMPLE = (
    "Defense attorney declaring \"Ladies and gentlemen, reasonable doubt isn't just a phrase, it's the foundation of "
    'justice itself", footsteps on marble, jury shifting, courtroom drama, closing argument power.'
)
I2V_PROMPT_EXAMPLE = 'A man is crying and he says "I shouldn\'t have done it. I regret everything"'
IMAGE_URL_EXAMPLE = "https://v3b.fal.media/files/b/0a8773cd/REzCWn1BKUVuMFTxR-R3W_image_317.png"
VIDEO_URL_EXAMPLE = "https://v3b.fal.media/files/b/0a8773d3/l2fk-fIO_PQFPzbvHkQX1_video.mp4"
PROMPT = "The text prompt used to generate the video"  # descriptions and examples: fal's own, for the documents


class TextToVideoInput(BaseModel):
    """The input of Seedance 1.5 Pro text-to-video."""

    model_config = ConfigDict(frozen=True, extra="ignore", use_enum_values=False)

    prompt: str = Field(description=PROMPT, examples=[T2V_PROMPT_EXAMPLE])
    aspect_ratio: AspectRatio = Field(default=AspectRatio.R16_9, description="The aspect ratio of the generated video")
    resolution: Resolution = Field(
        default=Resolution.P720,
        description="Video resolution - 480p for faster generation, 720p for balance, 1080p for higher quality",
    )
    duration: Duration = Field(default=Duration.S5, description="Duration of the video in seconds")
    camera_fixed: bool = Field(default=False, description="Whether to fix the camera position")
    seed: int | None = Field(
        default=None, ge=-1, le=MAX_SEED, description="Random seed to control video generation. Use -1 for random."
    )
    enable_safety_checker: bool = Field(
        default=True, description="If set to true, the safety checker will be enabled.", examples=[True]
    )
    generate_audio: bool = Field(default=True, description="Whether to generate audio for the video")

    @property
    def duration_seconds(self) -> int:
        return int(self.duration.value)

    @property
    def is_seeded(self) -> bool:
        """True when the output is deterministic: an explicit seed that is not -1 ("random")."""
        return self.seed is not None and self.seed != -1


class ImageToVideoInput(TextToVideoInput):
    """The input of Seedance 1.5 Pro image-to-video: text-to-video's, plus the start and end frames."""

    prompt: str = Field(description=PROMPT, examples=[I2V_PROMPT_EXAMPLE])
    image_url: ImageUrl = Field(description="The URL of the image used to generate video", examples=[IMAGE_URL_EXAMPLE])
    end_image_url: ImageUrl | None = Field(
        default=None, description="The URL of the image the video ends with. Defaults to None."
    )


SeedanceInput = TextToVideoInput | ImageToVideoInput

INPUT_MODELS: dict[EndpointKind, type[TextToVideoInput]] = {
    EndpointKind.TEXT_TO_VIDEO: TextToVideoInput,
    EndpointKind.IMAGE_TO_VIDEO: ImageToVideoInput,
}


class VideoFile(BaseModel):
    """A file as fal returns it (its ``File`` type)."""

    model_config = ConfigDict(extra="allow", title="File")

    url: str = Field(description="The URL where the file can be downloaded from.")
    content_type: str | None = Field(default=None, description="The mime type of the file.", examples=["video/mp4"])
    file_name: str | None = Field(
        default=None, description="The name of the file. It will be auto-generated if not provided."
    )
    file_size: int | None = Field(default=None, description="The size of the file in bytes.")


class SeedanceOutput(BaseModel):
    """The output of both endpoints: the video and the seed it was generated with."""

    model_config = ConfigDict(extra="allow")

    video: VideoFile = Field(description="Generated video file", examples=[{"url": VIDEO_URL_EXAMPLE}])
    seed: int = Field(description="Seed used for generation", examples=[42])


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
    if json_too_deep(raw):
        raise InvalidInputError([_too_deep_entry()])
    try:
        payload = json.loads(raw)
    except RecursionError:  # a backstop, should the scan above ever let a body through: never a 500
        raise InvalidInputError([_too_deep_entry()]) from None
    except UnicodeDecodeError:
        raise InvalidInputError([_json_invalid(0, "invalid encoding")]) from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError([_json_invalid(exc.pos, exc.msg)]) from None
    except ValueError:  # an integer literal longer than Python converts (sys.get_int_max_str_digits)
        raise InvalidInputError([_json_invalid(0, "number literal too long")]) from None
    return validate_input(endpoint, payload)


def json_too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``raw`` nests arrays and objects more than ``limit`` levels deep, counted without recursion: one
    linear pass over the brackets outside strings (an unterminated string runs to the end, as a decoder reads it)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if b"[" * (limit + 1) in brackets:
        return True
    return any(map(limit.__lt__, accumulate(map(_BRACKET_STEP.__getitem__, brackets))))


# A JSON string, possessive so that the scan stays linear whatever the quotes and backslashes: every opening quote
# matches, up to its closing quote or the end of the body.
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = tuple(1 if b in b"[{" else -1 for b in range(256))


def _too_deep_entry() -> dict[str, Any]:
    reason = f"nested more than {MAX_JSON_DEPTH} levels deep"
    return {
        "type": "json_invalid",
        "loc": ["body"],
        "msg": f"JSON decode error: {reason}",
        "input": {},
        "ctx": {"error": reason},
    }


def _json_invalid(pos: int, reason: str) -> dict[str, Any]:
    return {
        "type": "json_invalid",
        "loc": ["body", pos],
        "msg": "JSON decode error",
        "input": {},
        "ctx": {"error": reason},
    }


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
