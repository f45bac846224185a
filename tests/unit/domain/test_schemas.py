"""Seedance 1.5 Pro input validation and endpoint lookup (docs/protocol.md §1.3, §11; seeds for both endpoints)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from pydantic import ValidationError

from service.domain import schemas
from service.domain.endpoints import (
    ENDPOINTS,
    IMAGE_TO_VIDEO,
    TEXT_TO_VIDEO,
    Endpoint,
    EndpointKind,
    find_endpoint,
)
from service.domain.schemas import (
    INPUT_MODELS,
    MAX_JSON_DEPTH,
    MAX_SEED,
    AspectRatio,
    Duration,
    ImageToVideoInput,
    InvalidInputError,
    Resolution,
    SeedanceOutput,
    TextToVideoInput,
    json_too_deep,
    normalized_input,
    parse_input,
    validate_input,
)
from tests.support.endpoints import DEFAULTS, I2V, T2V

PROMPT = 'A man is crying and he says "I shouldn\'t have done it. I regret everything"'
IMAGE = "https://v3b.fal.media/files/b/0a8773cd/REzCWn1BKUVuMFTxR-R3W_image_317.png"
END_IMAGE = "https://v3b.fal.media/files/b/0a8773cd/end.png"

# The allowed values, in the order fal's pages list them.
ASPECT_RATIOS = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "auto")
RESOLUTIONS = ("480p", "720p", "1080p")
DURATIONS = ("4", "5", "6", "7", "8", "9", "10", "11", "12")
ENUM_VALUES: dict[str, tuple[str, ...]] = {
    "aspect_ratio": ASPECT_RATIOS,
    "resolution": RESOLUTIONS,
    "duration": DURATIONS,
}
# What pydantic (and so a FastAPI app) says about a value outside each enum.
EXPECTED: dict[str, str] = {
    "aspect_ratio": "'21:9', '16:9', '4:3', '1:1', '3:4', '9:16' or 'auto'",
    "resolution": "'480p', '720p' or '1080p'",
    "duration": "'4', '5', '6', '7', '8', '9', '10', '11' or '12'",
}
BOOL_FIELDS = ("camera_fixed", "enable_safety_checker", "generate_audio")
ENTRY_KEYS = {"type", "loc", "msg", "input", "ctx"}


@pytest.fixture(params=[IMAGE_TO_VIDEO, TEXT_TO_VIDEO], ids=["i2v", "t2v"])
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    ep: Endpoint = request.param
    return ep


def required_fields(endpoint: Endpoint) -> dict[str, Any]:
    if endpoint.kind is EndpointKind.IMAGE_TO_VIDEO:
        return {"prompt": PROMPT, "image_url": IMAGE}
    return {"prompt": PROMPT}


def body(endpoint: Endpoint, **fields: Any) -> bytes:
    return json.dumps({**required_fields(endpoint), **fields}).encode()


def errors_of(endpoint: Endpoint, raw: bytes) -> list[dict[str, Any]]:
    with pytest.raises(InvalidInputError) as exc_info:
        parse_input(endpoint, raw)
    detail = exc_info.value.detail
    assert detail, "an InvalidInputError must carry at least one entry"
    return detail


def assert_fastapi_shaped(detail: list[dict[str, Any]]) -> None:
    """Every entry is strict JSON, uses FastAPI's keys (no pydantic ``url``) and is located under the body."""
    json.dumps(detail, allow_nan=False)
    for entry in detail:
        assert {"type", "loc", "msg", "input"} <= entry.keys() <= ENTRY_KEYS
        assert isinstance(entry["type"], str)
        assert isinstance(entry["msg"], str)
        assert entry["loc"][0] == "body"


# --- enums -------------------------------------------------------------------------------------------------------


def test_enum_classes_hold_exactly_the_published_values() -> None:
    assert [m.value for m in AspectRatio] == list(ASPECT_RATIOS)
    assert [m.value for m in Resolution] == list(RESOLUTIONS)
    assert [m.value for m in Duration] == list(DURATIONS)


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in ENUM_VALUES.items() for v in values])
def test_every_enum_value_is_accepted_and_normalized(endpoint: Endpoint, field: str, value: str) -> None:
    data = parse_input(endpoint, body(endpoint, **{field: value}))

    assert getattr(data, field).value == value
    normalized = normalized_input(data)
    assert normalized[field] == value
    assert type(normalized[field]) is str
    assert normalized == {**required_fields(endpoint), **DEFAULTS, field: value}


@pytest.mark.parametrize("value", DURATIONS)
def test_duration_seconds_is_the_duration_as_an_int(endpoint: Endpoint, value: str) -> None:
    data = parse_input(endpoint, body(endpoint, duration=value))

    assert type(data.duration_seconds) is int
    assert data.duration_seconds == int(value)


INVALID_ENUM_VALUES: list[tuple[str, Any]] = [
    ("duration", "3"),
    ("duration", "13"),
    ("duration", "0"),
    ("duration", 5),
    ("duration", 5.0),
    ("duration", "5s"),
    ("duration", "05"),
    ("duration", " 5"),
    ("duration", "4.0"),
    ("duration", ""),
    ("duration", True),
    ("duration", None),
    ("duration", []),
    ("duration", {"seconds": "5"}),
    ("resolution", "4k"),
    ("resolution", "720"),
    ("resolution", "720P"),
    ("resolution", "1440p"),
    ("resolution", 720),
    ("resolution", ""),
    ("aspect_ratio", "2:1"),
    ("aspect_ratio", ""),
    ("aspect_ratio", "16/9"),
    ("aspect_ratio", "16:9 "),
    ("aspect_ratio", "AUTO"),
    ("aspect_ratio", 1.777),
]


@pytest.mark.parametrize(("field", "value"), INVALID_ENUM_VALUES)
def test_a_value_outside_an_enum_is_rejected_fastapi_style(endpoint: Endpoint, field: str, value: Any) -> None:
    detail = errors_of(endpoint, body(endpoint, **{field: value}))

    assert detail == [
        {
            "type": "enum",
            "loc": ["body", field],
            "msg": f"Input should be {EXPECTED[field]}",
            "input": value,
            "ctx": {"expected": EXPECTED[field]},
        }
    ]
    assert_fastapi_shaped(detail)


def test_the_spec_example_for_an_invalid_duration_is_reproduced_byte_for_byte(endpoint: Endpoint) -> None:
    detail = errors_of(endpoint, body(endpoint, duration="3"))

    assert json.dumps({"detail": detail}, separators=(",", ":")) == (
        '{"detail":[{"type":"enum","loc":["body","duration"],'
        "\"msg\":\"Input should be '4', '5', '6', '7', '8', '9', '10', '11' or '12'\","
        "\"input\":\"3\",\"ctx\":{\"expected\":\"'4', '5', '6', '7', '8', '9', '10', '11' or '12'\"}}]}"
    )


# --- required and optional fields ----------------------------------------------------------------------------------


def test_prompt_is_required_on_both_endpoints(endpoint: Endpoint) -> None:
    payload = required_fields(endpoint)
    del payload["prompt"]

    detail = errors_of(endpoint, json.dumps(payload).encode())

    assert detail == [{"type": "missing", "loc": ["body", "prompt"], "msg": "Field required", "input": payload}]


@pytest.mark.parametrize("value", [None, 5, ["a"], {"text": "a"}, True])
def test_prompt_must_be_a_string(endpoint: Endpoint, value: Any) -> None:
    detail = errors_of(endpoint, body(endpoint, prompt=value))

    assert detail == [
        {"type": "string_type", "loc": ["body", "prompt"], "msg": "Input should be a valid string", "input": value}
    ]


def test_image_url_is_required_on_image_to_video() -> None:
    detail = errors_of(IMAGE_TO_VIDEO, json.dumps({"prompt": PROMPT}).encode())

    assert detail == [
        {"type": "missing", "loc": ["body", "image_url"], "msg": "Field required", "input": {"prompt": PROMPT}}
    ]


@pytest.mark.parametrize("value", [None, 5, [IMAGE], {"url": IMAGE}])
def test_image_url_must_be_a_string(value: Any) -> None:
    detail = errors_of(IMAGE_TO_VIDEO, body(IMAGE_TO_VIDEO, image_url=value))

    assert detail == [
        {"type": "string_type", "loc": ["body", "image_url"], "msg": "Input should be a valid string", "input": value}
    ]


def test_image_to_video_forwards_image_url() -> None:
    data = parse_input(IMAGE_TO_VIDEO, body(IMAGE_TO_VIDEO))

    assert isinstance(data, ImageToVideoInput)
    assert data.image_url == IMAGE
    assert normalized_input(data)["image_url"] == IMAGE


def test_text_to_video_ignores_and_drops_the_image_fields() -> None:
    data = parse_input(TEXT_TO_VIDEO, body(TEXT_TO_VIDEO, image_url=IMAGE, end_image_url=END_IMAGE))

    assert not isinstance(data, ImageToVideoInput)
    assert normalized_input(data) == {"prompt": PROMPT, **DEFAULTS}


def test_text_to_video_ignores_even_an_invalid_image_url() -> None:
    data = parse_input(TEXT_TO_VIDEO, body(TEXT_TO_VIDEO, image_url=5))

    assert "image_url" not in normalized_input(data)


@pytest.mark.parametrize(
    "extra",
    [
        {"num_frames": 121},
        {"fps": 24, "negative_prompt": "blurry"},
        {"sync_mode": True},
        {"PROMPT": "shouted"},
        {"": "empty key"},
        {"nested": {"a": [1, {"b": None}]}},
    ],
)
def test_unknown_fields_are_ignored_and_dropped(endpoint: Endpoint, extra: dict[str, Any]) -> None:
    data = parse_input(endpoint, body(endpoint, **extra))

    assert normalized_input(data) == {**required_fields(endpoint), **DEFAULTS}


def test_end_image_url_is_optional_on_image_to_video() -> None:
    without = parse_input(IMAGE_TO_VIDEO, body(IMAGE_TO_VIDEO))
    with_end = parse_input(IMAGE_TO_VIDEO, body(IMAGE_TO_VIDEO, end_image_url=END_IMAGE))

    assert isinstance(without, ImageToVideoInput)
    assert isinstance(with_end, ImageToVideoInput)
    assert without.end_image_url is None
    assert "end_image_url" not in normalized_input(without)
    assert with_end.end_image_url == END_IMAGE
    assert normalized_input(with_end) == {"prompt": PROMPT, "image_url": IMAGE, "end_image_url": END_IMAGE, **DEFAULTS}


def test_an_explicit_null_end_image_url_is_the_same_as_none() -> None:
    data = parse_input(IMAGE_TO_VIDEO, body(IMAGE_TO_VIDEO, end_image_url=None))

    assert normalized_input(data) == normalized_input(parse_input(IMAGE_TO_VIDEO, body(IMAGE_TO_VIDEO)))


def test_end_image_url_must_be_a_string() -> None:
    detail = errors_of(IMAGE_TO_VIDEO, body(IMAGE_TO_VIDEO, end_image_url=7))

    assert detail == [
        {"type": "string_type", "loc": ["body", "end_image_url"], "msg": "Input should be a valid string", "input": 7}
    ]


# --- booleans ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", BOOL_FIELDS)
@pytest.mark.parametrize("value", [True, False])
def test_booleans_accept_json_booleans(endpoint: Endpoint, field: str, value: bool) -> None:
    data = parse_input(endpoint, body(endpoint, **{field: value}))

    assert getattr(data, field) is value
    assert normalized_input(data)[field] is value


@pytest.mark.parametrize("field", BOOL_FIELDS)
@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), (1, True), (0, False)])
def test_booleans_are_validated_in_lax_mode_like_fastapi(
    endpoint: Endpoint, field: str, value: Any, expected: bool
) -> None:
    data = parse_input(endpoint, body(endpoint, **{field: value}))

    assert normalized_input(data)[field] is expected


BOOL_PARSING = "Input should be a valid boolean, unable to interpret input"
BOOL_TYPE = "Input should be a valid boolean"


@pytest.mark.parametrize("field", BOOL_FIELDS)
@pytest.mark.parametrize(
    ("value", "error_type", "msg"),
    [
        ("maybe", "bool_parsing", BOOL_PARSING),
        ("", "bool_parsing", BOOL_PARSING),
        ("yes please", "bool_parsing", BOOL_PARSING),
        (2, "bool_parsing", BOOL_PARSING),
        (0.5, "bool_type", BOOL_TYPE),
        (None, "bool_type", BOOL_TYPE),
        ([True], "bool_type", BOOL_TYPE),
        ({"value": True}, "bool_type", BOOL_TYPE),
    ],
)
def test_booleans_reject_garbage(endpoint: Endpoint, field: str, value: Any, error_type: str, msg: str) -> None:
    detail = errors_of(endpoint, body(endpoint, **{field: value}))

    assert detail == [{"type": error_type, "loc": ["body", field], "msg": msg, "input": value}]


# --- seed ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [-1, 0, 1, 42, 2**31 - 1, 2**32 - 1])
def test_seed_accepts_ints_and_keeps_them(endpoint: Endpoint, seed: int) -> None:
    data = parse_input(endpoint, body(endpoint, seed=seed))

    assert data.seed == seed
    assert normalized_input(data)["seed"] == seed


@pytest.mark.parametrize(
    ("value", "error_type", "msg", "rendered_input"),
    [
        ("x", "int_parsing", "Input should be a valid integer, unable to parse string as an integer", "x"),
        ("", "int_parsing", "Input should be a valid integer, unable to parse string as an integer", ""),
        ("1.5", "int_parsing", "Input should be a valid integer, unable to parse string as an integer", "1.5"),
        (1.5, "int_from_float", "Input should be a valid integer, got a number with a fractional part", 1.5),
        ([1], "int_type", "Input should be a valid integer", [1]),
        ({"seed": 1}, "int_type", "Input should be a valid integer", {"seed": 1}),
    ],
)
def test_seed_rejects_non_integers(
    endpoint: Endpoint, value: Any, error_type: str, msg: str, rendered_input: Any
) -> None:
    detail = errors_of(endpoint, body(endpoint, seed=value))

    assert detail == [{"type": error_type, "loc": ["body", "seed"], "msg": msg, "input": rendered_input}]


@pytest.mark.parametrize(("raw_seed", "rendered"), [(b"NaN", "nan"), (b"Infinity", "inf"), (b"-Infinity", "-inf")])
def test_a_non_finite_seed_is_rejected_and_rendered_as_strict_json(
    endpoint: Endpoint, raw_seed: bytes, rendered: str
) -> None:
    raw = body(endpoint)[:-1] + b', "seed": ' + raw_seed + b"}"

    detail = errors_of(endpoint, raw)

    assert detail == [
        {"type": "finite_number", "loc": ["body", "seed"], "msg": "Input should be a finite number", "input": rendered}
    ]


@pytest.mark.parametrize(
    ("fields", "seeded"),
    [
        ({}, False),
        ({"seed": None}, False),
        ({"seed": -1}, False),
        ({"seed": 0}, True),
        ({"seed": 42}, True),
        ({"seed": 2**32 - 1}, True),
    ],
)
def test_is_seeded_only_for_an_explicit_seed_other_than_minus_one(
    endpoint: Endpoint, fields: dict[str, Any], seeded: bool
) -> None:
    data = parse_input(endpoint, body(endpoint, **fields))

    assert data.is_seeded is seeded


def test_a_null_seed_is_omitted_from_the_normalized_input(endpoint: Endpoint) -> None:
    data = parse_input(endpoint, body(endpoint, seed=None))

    assert "seed" not in normalized_input(data)


# --- defaults and normalization ------------------------------------------------------------------------------------


def test_normalized_input_fills_every_default_and_omits_absent_optionals(endpoint: Endpoint) -> None:
    data = parse_input(endpoint, body(endpoint))

    normalized = normalized_input(data)

    assert normalized == {**required_fields(endpoint), **DEFAULTS}
    assert "seed" not in normalized
    assert "end_image_url" not in normalized
    assert data.duration_seconds == 5
    assert type(data.duration_seconds) is int
    assert data.is_seeded is False


def test_an_explicit_default_duration_normalizes_like_an_absent_one(endpoint: Endpoint) -> None:
    explicit = normalized_input(parse_input(endpoint, body(endpoint, duration="5")))
    absent = normalized_input(parse_input(endpoint, body(endpoint)))

    assert explicit == absent


def test_spelling_out_every_default_normalizes_like_leaving_them_out(endpoint: Endpoint) -> None:
    explicit = normalized_input(parse_input(endpoint, body(endpoint, **DEFAULTS)))
    absent = normalized_input(parse_input(endpoint, body(endpoint)))

    assert explicit == absent


def test_the_fal_full_example_is_accepted() -> None:
    example = {"prompt": PROMPT, **DEFAULTS, "image_url": IMAGE}

    data = parse_input(IMAGE_TO_VIDEO, json.dumps(example).encode())

    assert normalized_input(data) == example


def test_a_fully_specified_input_round_trips(endpoint: Endpoint) -> None:
    fields: dict[str, Any] = {
        "aspect_ratio": "9:16",
        "resolution": "1080p",
        "duration": "12",
        "camera_fixed": True,
        "seed": 1234,
        "enable_safety_checker": False,
        "generate_audio": False,
    }
    if endpoint.kind is EndpointKind.IMAGE_TO_VIDEO:
        fields["end_image_url"] = END_IMAGE

    normalized = normalized_input(parse_input(endpoint, body(endpoint, **fields)))

    assert normalized == {**required_fields(endpoint), **fields}
    again = normalized_input(parse_input(endpoint, json.dumps(normalized, allow_nan=False).encode()))
    assert again == normalized


def test_normalized_input_is_independent_of_key_order(endpoint: Endpoint) -> None:
    forward = {**required_fields(endpoint), "duration": "8", "resolution": "480p", "seed": 7}
    backward = dict(reversed(forward.items()))

    a = normalized_input(parse_input(endpoint, json.dumps(forward).encode()))
    b = normalized_input(parse_input(endpoint, json.dumps(backward).encode()))

    assert json.dumps(a) == json.dumps(b)


def test_inputs_are_immutable(endpoint: Endpoint) -> None:
    data = parse_input(endpoint, body(endpoint))

    with pytest.raises(ValidationError, match="frozen"):
        data.prompt = "something else"  # type: ignore[misc]


# --- body-level errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b" ", b"\r\n\t ", b"null", b" null \n"])
def test_no_body_is_a_missing_body(endpoint: Endpoint, raw: bytes) -> None:
    assert errors_of(endpoint, raw) == [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]


@pytest.mark.parametrize(
    ("raw", "pos", "reason"),
    [
        (b'{"prompt": ', 11, "Expecting value"),
        (b"{", 1, "Expecting property name enclosed in double quotes"),
        (b'{"prompt": "x",}', 15, "Expecting property name enclosed in double quotes"),
        (b'{"prompt": "x"} x', 16, "Extra data"),
        (b"not json", 0, "Expecting value"),
        (b"{'prompt': 'x'}", 1, "Expecting property name enclosed in double quotes"),
    ],
)
def test_invalid_json_is_json_invalid_at_the_error_position(
    endpoint: Endpoint, raw: bytes, pos: int, reason: str
) -> None:
    detail = errors_of(endpoint, raw)

    assert detail == [
        {
            "type": "json_invalid",
            "loc": ["body", pos],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": reason},
        }
    ]


@pytest.mark.parametrize("raw", [b"\xff", b'{"prompt": "\xe9"}', b"\xc3\x28"])
def test_a_body_that_is_not_utf8_is_json_invalid(endpoint: Endpoint, raw: bytes) -> None:
    detail = errors_of(endpoint, raw)

    assert detail == [
        {
            "type": "json_invalid",
            "loc": ["body", 0],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": "invalid encoding"},
        }
    ]


@pytest.mark.parametrize(
    ("raw", "rendered"),
    [
        (b"[]", []),
        (b'[{"prompt": "x"}]', [{"prompt": "x"}]),
        (b'"a string"', "a string"),
        (b"42", 42),
        (b"1.5", 1.5),
        (b"true", True),
        (b"false", False),
        (b"NaN", "nan"),
        (b"[Infinity]", ["inf"]),
    ],
)
def test_a_body_that_is_not_an_object_is_model_attributes_type(endpoint: Endpoint, raw: bytes, rendered: Any) -> None:
    detail = errors_of(endpoint, raw)

    assert detail == [
        {
            "type": "model_attributes_type",
            "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": rendered,
        }
    ]
    assert_fastapi_shaped(detail)


ODD_VALUES: list[bytes] = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e400",
    b"-1e400",
    b"[NaN, Infinity]",
    b'{"a": {"b": [NaN, {"c": -Infinity}]}}',
    b"123456789012345678901234567890",
    b'"\\u0000"',
    b'"\\ud83d\\ude00 \\u00e9"',
    b"{}",
    b"[]",
    b"[[[[[]]]]]",
]
ODD_FIELDS = ["prompt", "aspect_ratio", "resolution", "duration", "camera_fixed", "seed", "generate_audio"]
# The only odd values of the right type: they get through, and are forwarded.
ACCEPTED_ODD = [
    ("prompt", b'"\\u0000"'),
    ("prompt", b'"\\ud83d\\ude00 \\u00e9"'),
]
REJECTED_ODD = [(f, v) for f in ODD_FIELDS for v in ODD_VALUES if (f, v) not in ACCEPTED_ODD]


def odd_body(field: str, value: bytes) -> bytes:
    return b'{"prompt": "p", "image_url": "https://e.com/u.png", "' + field.encode() + b'": ' + value + b"}"


@pytest.mark.parametrize(("field", "value"), REJECTED_ODD)
def test_error_entries_are_strict_json_for_odd_inputs(endpoint: Endpoint, field: str, value: bytes) -> None:
    detail = errors_of(endpoint, odd_body(field, value))

    assert_fastapi_shaped(detail)
    assert [entry["loc"] for entry in detail] == [["body", field]]


@pytest.mark.parametrize(("field", "value"), ACCEPTED_ODD)
def test_odd_but_well_typed_values_are_forwarded_as_strict_json(endpoint: Endpoint, field: str, value: bytes) -> None:
    normalized = normalized_input(parse_input(endpoint, odd_body(field, value)))

    assert normalized[field] == json.loads(value)
    json.dumps(normalized, allow_nan=False)


@pytest.mark.parametrize(
    "payload",
    [
        {"prompt": object()},
        {"prompt": float("nan")},
        {"seed": float("inf")},
        {"duration": Duration.S5, "resolution": b"720p", "aspect_ratio": (16, 9)},
        {"camera_fixed": {1, 2}, "seed": complex(1, 1)},
        {"prompt": {1: float("-inf"), (2, 3): [float("nan")]}},
    ],
)
def test_validate_input_renders_python_only_values_as_strict_json(endpoint: Endpoint, payload: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError) as exc_info:
        validate_input(endpoint, {**required_fields(endpoint), **payload})

    assert_fastapi_shaped(exc_info.value.detail)


@pytest.mark.parametrize("payload", [None, [1, 2], (1, 2), "body", 3, float("nan"), object()])
def test_validate_input_rejects_non_objects_with_strict_json(endpoint: Endpoint, payload: Any) -> None:
    with pytest.raises(InvalidInputError) as exc_info:
        validate_input(endpoint, payload)

    detail = exc_info.value.detail
    assert_fastapi_shaped(detail)
    assert [entry["loc"] for entry in detail] == [["body"]]
    assert detail[0]["type"] == ("missing" if payload is None else "model_attributes_type")


def test_validate_input_accepts_a_parsed_object(endpoint: Endpoint) -> None:
    data = validate_input(endpoint, {**required_fields(endpoint), "duration": "7"})

    assert isinstance(data, INPUT_MODELS[endpoint.kind])
    assert data.duration_seconds == 7


def test_every_error_is_reported_in_one_response() -> None:
    payload = {
        "prompt": 1,
        "aspect_ratio": "2:1",
        "resolution": "4k",
        "duration": "13",
        "camera_fixed": "maybe",
        "seed": "x",
        "enable_safety_checker": "perhaps",
        "generate_audio": "loud",
        "end_image_url": 3,
    }

    with pytest.raises(InvalidInputError) as exc_info:
        parse_input(IMAGE_TO_VIDEO, json.dumps(payload).encode())

    detail = exc_info.value.detail
    assert [(entry["loc"][1], entry["type"]) for entry in detail] == [
        ("prompt", "string_type"),
        ("aspect_ratio", "enum"),
        ("resolution", "enum"),
        ("duration", "enum"),
        ("camera_fixed", "bool_parsing"),
        ("seed", "int_parsing"),
        ("enable_safety_checker", "bool_parsing"),
        ("generate_audio", "bool_parsing"),
        ("image_url", "missing"),
        ("end_image_url", "string_type"),
    ]
    assert str(exc_info.value) == "10 validation error(s)"
    assert_fastapi_shaped(detail)


def test_missing_required_fields_are_all_reported() -> None:
    detail = errors_of(IMAGE_TO_VIDEO, b"{}")

    assert detail == [
        {"type": "missing", "loc": ["body", "prompt"], "msg": "Field required", "input": {}},
        {"type": "missing", "loc": ["body", "image_url"], "msg": "Field required", "input": {}},
    ]


def test_invalid_input_error_counts_its_entries() -> None:
    error = InvalidInputError([{"type": "missing"}, {"type": "enum"}])

    assert str(error) == "2 validation error(s)"
    assert error.detail == [{"type": "missing"}, {"type": "enum"}]


# --- models and endpoints ------------------------------------------------------------------------------------------


def test_each_endpoint_kind_has_its_input_model() -> None:
    assert {
        EndpointKind.TEXT_TO_VIDEO: TextToVideoInput,
        EndpointKind.IMAGE_TO_VIDEO: ImageToVideoInput,
    } == INPUT_MODELS


def test_the_output_schema_needs_a_video_url_and_a_seed() -> None:
    output = SeedanceOutput.model_validate(
        {"video": {"url": "https://v3b.fal.media/files/b/x/video.mp4", "file_size": 4812345, "extra": 1}, "seed": 42}
    )

    assert output.seed == 42
    assert output.video.url == "https://v3b.fal.media/files/b/x/video.mp4"
    assert output.video.content_type is None
    assert output.video.file_size == 4812345
    assert output.model_dump(exclude_none=True)["video"]["extra"] == 1
    with pytest.raises(ValidationError):
        SeedanceOutput.model_validate({"video": {"url": "u"}})
    with pytest.raises(ValidationError):
        SeedanceOutput.model_validate({"video": {}, "seed": 1})


@pytest.mark.parametrize(
    ("endpoint_id", "expected"),
    [
        (I2V, IMAGE_TO_VIDEO),
        (T2V, TEXT_TO_VIDEO),
        (I2V + "/", IMAGE_TO_VIDEO),
        (T2V + "/", TEXT_TO_VIDEO),
    ],
)
def test_find_endpoint_finds_both_endpoints(endpoint_id: str, expected: Endpoint) -> None:
    assert find_endpoint(endpoint_id) is expected


@pytest.mark.parametrize(
    "endpoint_id",
    [
        "",
        "/",
        "fal-ai",
        "fal-ai/bytedance",
        "fal-ai/bytedance/seedance/v1.5/pro",
        "fal-ai/bytedance/seedance/v1.5/pro/reference-to-video",
        "fal-ai/bytedance/seedance/v1/pro/image-to-video",
        "fal-ai/bytedance/seedance/v1.5/lite/text-to-video",
        I2V + "/extra",
        T2V + "/stream",
        I2V.upper(),
        " " + T2V,
        T2V + " ",
        "image-to-video",
        "workflows/fal-ai/bytedance/seedance/v1.5/pro/image-to-video",
    ],
)
def test_find_endpoint_returns_none_for_unknown_ids(endpoint_id: str) -> None:
    assert find_endpoint(endpoint_id) is None


@pytest.mark.parametrize(
    ("ep", "endpoint_id", "kind"),
    [(IMAGE_TO_VIDEO, I2V, EndpointKind.IMAGE_TO_VIDEO), (TEXT_TO_VIDEO, T2V, EndpointKind.TEXT_TO_VIDEO)],
)
def test_endpoint_ids_and_queue_app(ep: Endpoint, endpoint_id: str, kind: EndpointKind) -> None:
    assert ep.id == endpoint_id
    assert ep.kind is kind
    assert ep.owner == "fal-ai"
    assert ep.alias == "bytedance"
    assert ep.app == "fal-ai/bytedance"


def test_endpoint_kinds_are_the_id_suffixes() -> None:
    for ep in ENDPOINTS.values():
        assert ep.id.endswith("/" + ep.kind.value)


def test_the_registry_holds_exactly_the_two_seedance_endpoints() -> None:
    assert ENDPOINTS == {I2V: IMAGE_TO_VIDEO, T2V: TEXT_TO_VIDEO}


def test_endpoints_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        IMAGE_TO_VIDEO.id = T2V  # type: ignore[misc]


# --- hostile input: seed range, image URLs, deep and odd JSON ------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "error_type", "msg"),
    [
        (-2, "greater_than_equal", "Input should be greater than or equal to -1"),
        (-(2**40), "greater_than_equal", "Input should be greater than or equal to -1"),
        (2**32, "less_than_equal", f"Input should be less than or equal to {MAX_SEED}"),
        (2**70, "less_than_equal", f"Input should be less than or equal to {MAX_SEED}"),
    ],
)
def test_seed_outside_minus_one_and_the_32_bit_range_is_rejected(
    endpoint: Endpoint, seed: int, error_type: str, msg: str
) -> None:
    detail = errors_of(endpoint, body(endpoint, seed=seed))

    assert [(e["loc"], e["type"], e["msg"]) for e in detail] == [(["body", "seed"], error_type, msg)]
    assert_fastapi_shaped(detail)


URL_PARSING = "url_parsing"
BAD_IMAGE_URLS: list[tuple[str, str, str]] = [
    ("", URL_PARSING, "Input should be a valid URL, input is empty"),
    ("file:///etc/passwd", "url_scheme", "URL scheme should be 'http', 'https' or 'data'"),
    ("gopher://127.0.0.1:70/_x", "url_scheme", "URL scheme should be 'http', 'https' or 'data'"),
    ("ftp://e.com/a.png", "url_scheme", "URL scheme should be 'http', 'https' or 'data'"),
    ("javascript:alert(1)", "url_scheme", "URL scheme should be 'http', 'https' or 'data'"),
    ("cat.png", URL_PARSING, "Input should be a valid URL, relative URL without a base"),
    ("//e.com/a.png", URL_PARSING, "Input should be a valid URL, relative URL without a base"),
    ("https://", URL_PARSING, "Input should be a valid URL, empty host"),
    ("http:///a.png", URL_PARSING, "Input should be a valid URL, empty host"),
    ("https://e.com:99999/a.png", URL_PARSING, "Input should be a valid URL, invalid URL"),
    ("https://[::1/a.png", URL_PARSING, "Input should be a valid URL, invalid URL"),
    ("https://e.com/a b.png", URL_PARSING, "Input should be a valid URL, invalid character in URL"),
    (" https://e.com/a.png", URL_PARSING, "Input should be a valid URL, invalid character in URL"),
    ("https://e.com/a.png\r\nX-Injected: 1", URL_PARSING, "Input should be a valid URL, invalid character in URL"),
    ("https://e.com\\@evil.com/a.png", URL_PARSING, "Input should be a valid URL, invalid character in URL"),
    ("data:image/png;base64", URL_PARSING, "Input should be a valid URL, data URI without a comma"),
]


@pytest.mark.parametrize("field", ["image_url", "end_image_url"])
@pytest.mark.parametrize(("url", "error_type", "msg"), BAD_IMAGE_URLS)
def test_image_urls_must_be_http_urls_with_a_host_or_data_uris(field: str, url: str, error_type: str, msg: str) -> None:
    detail = errors_of(IMAGE_TO_VIDEO, body(IMAGE_TO_VIDEO, **{field: url}))

    assert [(e["loc"], e["type"], e["msg"], e["input"]) for e in detail] == [(["body", field], error_type, msg, url)]
    assert_fastapi_shaped(detail)


@pytest.mark.parametrize(
    "url",
    [
        IMAGE,
        "http://e.com/a.png",
        "HTTPS://E.COM/A.PNG",
        "https://user:secret@e.com:8443/a.png?x=1&y=%20#frag",
        "https://[2001:db8::1]/a.png",
        "https://127.0.0.1/a.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "DATA:,",
        "data:text/plain,a b c",
    ],
)
def test_good_image_urls_and_data_uris_are_forwarded_unchanged(url: str) -> None:
    data = parse_input(IMAGE_TO_VIDEO, body(IMAGE_TO_VIDEO, image_url=url, end_image_url=url))

    assert normalized_input(data)["image_url"] == url
    assert normalized_input(data)["end_image_url"] == url


def nested(depth: int, leaf: bytes = b"1") -> bytes:
    """An object whose ``x`` field holds arrays and objects alternately: ``depth`` levels, the body included."""
    inner = leaf
    for level in range(depth - 1):
        inner = b"[" + inner + b"]" if level % 2 else b'{"k": ' + inner + b"}"
    return b'{"prompt": "p", "image_url": "https://e.com/a.png", "x": ' + inner + b"}"


DEEP = {
    "type": "json_invalid",
    "loc": ["body"],
    "msg": f"JSON decode error: nested more than {MAX_JSON_DEPTH} levels deep",
    "input": {},
    "ctx": {"error": f"nested more than {MAX_JSON_DEPTH} levels deep"},
}


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 20_000 + b"]" * 20_000,
        b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
        b"[" * 20_000,  # never closed
        b"[{}," * 20_000,  # alternating, never a long run of one bracket
        nested(MAX_JSON_DEPTH + 1),
    ],
    ids=["arrays", "objects", "unclosed", "alternating", "one-too-deep"],
)
def test_json_nested_too_deeply_is_refused_before_decoding(endpoint: Endpoint, raw: bytes) -> None:
    assert json_too_deep(raw)
    assert errors_of(endpoint, raw) == [DEEP]


def test_a_recursion_error_in_the_decoder_is_the_same_422(endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schemas, "json_too_deep", lambda _raw: False)  # as if the scan had missed it

    assert errors_of(endpoint, b"[" * 100_000 + b"]" * 100_000) == [DEEP]


def test_json_at_the_depth_limit_is_decoded_and_the_extra_field_dropped(endpoint: Endpoint) -> None:
    raw = nested(MAX_JSON_DEPTH)

    assert not json_too_deep(raw)
    assert normalized_input(parse_input(endpoint, raw))["prompt"] == "p"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"prompt": "' + b"[" * 10_000 + b'"}',
        b'{"prompt": "\\"' + b"{" * 10_000 + b'"}',
        b'{"prompt": "\\\\", "x": "' + b"[" * 10_000 + b'"}',
        b"[]" * 10_000,
        b"[" + b"[[]]," * 5_000 + b"[]]",
    ],
    ids=["in-a-string", "after-an-escaped-quote", "after-an-escaped-backslash", "flat", "wide"],
)
def test_brackets_in_strings_and_wide_structures_do_not_count_as_depth(raw: bytes) -> None:
    assert not json_too_deep(raw)


def test_the_depth_scan_stays_linear_on_pathological_quotes() -> None:
    raw = b'"' + b'\\"' * 300_000 + b"[" * 100  # every quote escaped, never closed: one string to the end

    assert not json_too_deep(raw)


def test_an_integer_literal_too_long_to_convert_is_json_invalid(endpoint: Endpoint) -> None:
    detail = errors_of(endpoint, body(endpoint)[:-1] + b', "seed": ' + b"9" * 5000 + b"}")

    assert detail == [
        {
            "type": "json_invalid",
            "loc": ["body", 0],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": "number literal too long"},
        }
    ]


def test_a_duplicate_key_keeps_its_last_value_as_fastapi_does_and_that_is_what_is_checked(endpoint: Endpoint) -> None:
    accepted = parse_input(endpoint, body(endpoint)[:-1] + b', "seed": 1180591620717411303424, "seed": 7}')
    detail = errors_of(endpoint, body(endpoint)[:-1] + b', "seed": 7, "seed": 1180591620717411303424}')

    assert normalized_input(accepted)["seed"] == 7
    assert [e["type"] for e in detail] == ["less_than_equal"]
