"""The server proxy's mapping and refusal table (``service/proxy.py``; docs/protocol.md, "Server proxy")."""

from __future__ import annotations

import pytest

from service.proxy import INVALID_REQUEST, INVALID_TARGET, MAX_TARGET_CHARS, Mapped, Rejected, map_target

I2V = "fal-ai/bytedance/seedance/v1.5/pro/image-to-video"
T2V = "fal-ai/bytedance/seedance/v1.5/pro/text-to-video"
RID = "0b7a2b9e-7d7e-4c55-9b3e-2f3c1c1e2a10"


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (f"https://queue.fal.run/{I2V}", f"/queue/{I2V}", ""),
        (
            f"https://queue.fal.run/{T2V}?fal_webhook=https%3A%2F%2Fa.example%2Fh",
            f"/queue/{T2V}",
            "fal_webhook=https%3A%2F%2Fa.example%2Fh",
        ),
        (f"https://queue.fal.run/fal-ai/bytedance/requests/{RID}", f"/queue/fal-ai/bytedance/requests/{RID}", ""),
        (
            f"https://queue.fal.run/fal-ai/bytedance/requests/{RID}/status?logs=1",
            f"/queue/fal-ai/bytedance/requests/{RID}/status",
            "logs=1",
        ),
        (
            f"https://queue.fal.run/fal-ai/bytedance/requests/{RID}/status/stream?logs=0",
            f"/queue/fal-ai/bytedance/requests/{RID}/status/stream",
            "logs=0",
        ),
        (
            f"https://queue.fal.run/fal-ai/bytedance/requests/{RID}/cancel",
            f"/queue/fal-ai/bytedance/requests/{RID}/cancel",
            "",
        ),
        (f"https://fal.run/{I2V}", f"/run/{I2V}", ""),
        (f"https://QUEUE.FAL.RUN:443/{T2V}#frag", f"/queue/{T2V}", ""),
        (
            "https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3",
            "/rest/storage/upload/initiate",
            "storage_type=fal-cdn-v3",
        ),
        (
            "https://rest.fal.ai/storage/auth/token?storage_type=fal-cdn-v3",
            "/rest/storage/auth/token",
            "storage_type=fal-cdn-v3",
        ),
        (f"https://queue.fal.run/fal-ai/bytedance/requests/{RID}%41", f"/queue/fal-ai/bytedance/requests/{RID}A", ""),
    ],
)
def test_targets_on_the_gateways_own_routes_map_onto_them(target: str, path: str, query: str) -> None:
    mapped = map_target(target)
    assert isinstance(mapped, Mapped), mapped
    assert mapped.path == path
    assert mapped.query_string == query.encode()
    assert mapped.raw_path.decode().startswith(path.split("/", 2)[0] + "/" + path.split("/", 2)[1])


def test_the_raw_path_keeps_the_targets_escapes() -> None:
    mapped = map_target(f"https://queue.fal.run/fal-ai/bytedance/requests/{RID}%41/status")
    assert isinstance(mapped, Mapped)
    assert mapped.raw_path == f"/queue/fal-ai/bytedance/requests/{RID}%41/status".encode()


@pytest.mark.parametrize(
    "target",
    [
        "https://example.com/fal-ai/bytedance/seedance/v1.5/pro/image-to-video",
        "https://queue.fal.run.evil.example/x",
        "https://evilfal.run/x",
        "https://v3.fal.media/files/x.png",
        "https://127.0.0.1:8080/queue/x",
        "https://localhost/run/x",
    ],
)
def test_hosts_that_are_not_fals_get_412(target: str) -> None:
    assert map_target(target) == Rejected(412, INVALID_TARGET)


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "not a url",
        "https://queue.fal.run:99999/x",
        "x" * (MAX_TARGET_CHARS + 1),
        f"https://queue.fal.run/{I2V}?" + "a" * MAX_TARGET_CHARS,
        "https://queue.fal.run/fal-ai/bytedance/seedance/v1.5/pro/image-to-video\u00e9",
        f"http://queue.fal.run/{I2V}",  # fal's clients only build https
        f"https://user:pw@queue.fal.run/{I2V}",
        f"https://user@fal.run/{I2V}",
        f"https://queue.fal.run:8443/{I2V}",
        "https://queue.fal.run/fal-ai/flux/dev",  # a fal model the gateway does not serve
        "https://queue.fal.run/fal-ai/flux/requests/abc/status",
        "https://queue.fal.run/fal-ai/bytedance/requests/abc/logs",
        "https://queue.fal.run/fal-ai/bytedance/seedance/v1.5/pro",
        f"https://fal.run/fal-ai/bytedance/requests/{RID}",  # the run host has no request routes
        f"https://fal.run/{I2V}/stream",
        f"https://fal.run/{I2V}/",
        "https://queue.fal.run/fal-ai/bytedance/seedance/v1.5/pro/../pro/image-to-video",
        "https://queue.fal.run/fal-ai/bytedance/seedance/v1.5/pro/%2e%2e/pro/image-to-video",
        "https://queue.fal.run/fal-ai/bytedance/requests/..%2F..%2Fadmin/status",
        "https://queue.fal.run/fal-ai/bytedance/requests/a%5cb/status",
        "https://queue.fal.run/fal-ai//bytedance/requests/abc",
        "https://queue.fal.run/fal-ai/bytedance/requests/a%00b",
        "https://queue.fal.run/fal-ai/bytedance/requests/a%20b",
        "https://rest.fal.ai/storage/../admin/tenants",
        "https://rest.fal.ai/storage",
        "https://rest.fal.ai/tokens/",
        "https://rest.alpha.fal.ai/storage/upload/initiate",
        "https://fal.ai/storage/upload/initiate",
        "https://api.fal.ai/v1/models",
    ],
)
def test_other_targets_get_400_as_the_proxy_answers_them(target: str | None) -> None:
    assert map_target(target) == Rejected(400, INVALID_REQUEST)
