"""Cache keys: what is cacheable, and which requests hash the same."""

from __future__ import annotations

from typing import Any

import pytest

from service.domain.cachekeys import HASH_VERSION, cache_key, canonical_request, is_cacheable, scope_of
from service.domain.endpoints import IMAGE_TO_VIDEO, TEXT_TO_VIDEO
from service.domain.schemas import TextToVideoInput, validate_input

T2V = TEXT_TO_VIDEO.id
SCOPE = scope_of("acme", None)


def _input(**fields: Any) -> TextToVideoInput:
    return validate_input(TEXT_TO_VIDEO, {"prompt": "a fox", **fields})


def _key(data: TextToVideoInput, scope: str = SCOPE) -> str:
    return cache_key(scope, T2V, data)


@pytest.mark.parametrize(
    ("fields", "seedless", "expected"),
    [
        ({"seed": 1}, False, True),
        ({"seed": 0}, False, True),
        ({}, False, False),
        ({"seed": -1}, False, False),
        ({}, True, True),
        ({"seed": -1}, True, True),
    ],
)
def test_only_deterministic_requests_are_cacheable(fields: dict[str, Any], seedless: bool, expected: bool) -> None:
    assert is_cacheable(_input(**fields), seedless=seedless) is expected


@pytest.mark.parametrize(
    "same",
    [
        {"seed": 1, "duration": "5"},
        {"seed": 1, "generate_audio": True},
        {"seed": 1, "aspect_ratio": "16:9"},
        {"seed": "1"},
        {"seed": 1, "camera_fixed": False, "enable_safety_checker": True, "resolution": "720p"},
    ],
)
def test_requests_that_mean_the_same_hash_the_same(same: dict[str, Any]) -> None:
    assert _key(_input(**same)) == _key(_input(seed=1))


def test_no_seed_and_minus_one_hash_the_same() -> None:
    assert _key(_input()) == _key(_input(seed=-1))


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "a cat"},
        {"seed": 2},
        {"duration": "6"},
        {"resolution": "1080p"},
        {"aspect_ratio": "auto"},
        {"camera_fixed": True},
        {"generate_audio": False},
        {"enable_safety_checker": False},
    ],
)
def test_any_field_change_hashes_differently(change: dict[str, Any]) -> None:
    assert _key(_input(**{"seed": 1, **change})) != _key(_input(seed=1))


def test_scopes_endpoints_and_versions_are_part_of_the_key() -> None:
    data = _input(seed=1)
    assert _key(data, scope_of("acme", None)) != _key(data, scope_of("globex", None))
    assert _key(data, scope_of("acme", "studio")) == _key(data, scope_of("globex", "studio"))
    image = validate_input(IMAGE_TO_VIDEO, {"prompt": "a fox", "seed": 1, "image_url": "https://e.com/a.png"})
    assert cache_key(SCOPE, IMAGE_TO_VIDEO.id, image) != _key(data)
    assert _key(data).startswith(f"v{HASH_VERSION}-")


def test_image_digests_replace_urls() -> None:
    first = validate_input(IMAGE_TO_VIDEO, {"prompt": "x", "seed": 1, "image_url": "https://a.example/1.png"})
    second = validate_input(IMAGE_TO_VIDEO, {"prompt": "x", "seed": 1, "image_url": "https://b.example/copy.png"})
    digest = {"image_url": "sha256:abc"}
    assert cache_key(SCOPE, IMAGE_TO_VIDEO.id, first) != cache_key(SCOPE, IMAGE_TO_VIDEO.id, second)
    assert cache_key(SCOPE, IMAGE_TO_VIDEO.id, first, digest) == cache_key(SCOPE, IMAGE_TO_VIDEO.id, second, digest)
    assert (
        canonical_request(IMAGE_TO_VIDEO.id, first, {"end_image_url": "sha256:x"})["input"].get("end_image_url") is None
    ), "a digest for an absent field adds nothing"
