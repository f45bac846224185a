"""The fal queue simulator speaks fal's queue protocol: handles, status progression, results, cancel, auth, media."""

from __future__ import annotations

import uuid
from importlib import resources
from typing import Any

import httpx
import pytest

from service.domain.endpoints import ENDPOINTS, TEXT_TO_VIDEO
from service.domain.schemas import AspectRatio, InvalidInputError, Resolution, parse_input
from service.simulator.app import SimulatorState, create_simulator_app
from service.simulator.media import MEDIA_NAMES, SIZES
from tests.support.clocks import ManualClock
from tests.support.endpoints import I2V, I2V_INPUT, T2V
from tests.support.simulator import BASE, PROCESSING_SECONDS, QUEUE_SECONDS, make_state, path_of, sim_client, submit

FAL_KEY = "the-one-key"


async def status_of(client: httpx.AsyncClient, handle: dict[str, Any], logs: str = "0") -> httpx.Response:
    return await client.get(path_of(handle["status_url"]), params={"logs": logs})


# --- submit --------------------------------------------------------------------------------------------------------


async def test_submit_returns_a_fal_queue_handle_on_its_own_base_url(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/{I2V}", json=I2V_INPUT)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    rid = body["request_id"]
    assert uuid.UUID(rid).version == 4
    assert response.headers["x-fal-request-id"] == rid
    assert body == {
        "status": "IN_QUEUE",
        "request_id": rid,
        "response_url": f"{BASE}/fal-ai/bytedance/requests/{rid}",
        "status_url": f"{BASE}/fal-ai/bytedance/requests/{rid}/status",
        "cancel_url": f"{BASE}/fal-ai/bytedance/requests/{rid}/cancel",
        "logs": None,
        "metrics": {},
        "queue_position": 0,
    }


async def test_app_exposes_its_state(state: SimulatorState) -> None:
    assert create_simulator_app(state).state.simulator is state


async def test_queue_position_counts_earlier_jobs_still_waiting(client: httpx.AsyncClient, clock: ManualClock) -> None:
    first = await submit(client)
    clock.advance(0.5)
    second = await submit(client, I2V, I2V_INPUT)
    third = await submit(client)

    assert [first["queue_position"], second["queue_position"], third["queue_position"]] == [0, 1, 2]
    clock.advance(0.5)  # the first job starts running and leaves the queue
    assert (await status_of(client, third)).json()["queue_position"] == 1
    assert (await status_of(client, second)).json()["queue_position"] == 0
    assert "queue_position" not in (await status_of(client, first)).json()


# --- status progression -------------------------------------------------------------------------------------------


async def test_status_goes_through_queue_progress_and_completion(client: httpx.AsyncClient, clock: ManualClock) -> None:
    handle = await submit(client)
    rid = handle["request_id"]

    queued = await status_of(client, handle)
    assert queued.status_code == 202
    assert queued.headers["x-fal-request-id"] == rid
    assert queued.json() == {**handle, "status": "IN_QUEUE", "logs": None, "metrics": {}, "queue_position": 0}

    clock.advance(QUEUE_SECONDS)
    running = await status_of(client, handle, logs="1")
    assert running.status_code == 202
    assert running.json() == {**_urls(handle), "status": "IN_PROGRESS", "request_id": rid, "logs": [], "metrics": {}}

    clock.advance(PROCESSING_SECONDS * 2 / 5)
    logs = (await status_of(client, handle, logs="1")).json()["logs"]
    # Line k of 5 appears at k/5 of the 4 s run, which starts 1 s after a submit at 2026-01-01T00:00:00Z.
    assert logs == [log_line(1, "2026-01-01T00:00:01.800Z"), log_line(2, "2026-01-01T00:00:02.600Z")]

    clock.advance(PROCESSING_SECONDS * 3 / 5 - 0.001)
    almost = await status_of(client, handle, logs="true")
    assert almost.json()["status"] == "IN_PROGRESS"
    assert len(almost.json()["logs"]) == 4

    clock.advance(0.001)
    done = await status_of(client, handle, logs="true")
    assert done.status_code == 200
    body = done.json()
    assert body["status"] == "COMPLETED"
    assert body["metrics"] == {"inference_time": PROCESSING_SECONDS}
    assert [line["message"] for line in body["logs"]] == [f"Generating video: step {k}/5" for k in range(1, 6)]
    assert "error" not in body
    assert "error_type" not in body
    assert "queue_position" not in body


@pytest.mark.parametrize(("flag", "expect_logs"), [("0", False), ("false", False), ("1", True), ("true", True)])
async def test_logs_are_null_unless_asked_for(
    client: httpx.AsyncClient, clock: ManualClock, flag: str, expect_logs: bool
) -> None:
    handle = await submit(client)
    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS / 2)

    logs = (await status_of(client, handle, logs=flag)).json()["logs"]

    assert (None if logs is None else len(logs)) == (2 if expect_logs else None), "half-way through: 2 of 5 lines"


async def test_status_without_logs_parameter_has_null_logs(client: httpx.AsyncClient) -> None:
    handle = await submit(client)

    assert (await client.get(path_of(handle["status_url"]))).json()["logs"] is None


async def test_config_in_force_at_submit_time_applies_to_the_job(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    early = await submit(client)
    state.configure(queue_seconds=100.0, log_lines=2)
    late = await submit(client)
    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS)

    assert (await status_of(client, early)).json()["status"] == "COMPLETED"
    assert len((await status_of(client, early, logs="1")).json()["logs"]) == 5
    assert (await status_of(client, late)).json()["status"] == "IN_QUEUE"


# --- result --------------------------------------------------------------------------------------------------------


async def test_result_before_completion_is_a_400_request_error(client: httpx.AsyncClient, clock: ManualClock) -> None:
    handle = await submit(client)
    expected = {"detail": "Request is still in progress", "error_type": "request_in_progress"}

    for step in (0.0, QUEUE_SECONDS):
        clock.advance(step)
        response = await client.get(path_of(handle["response_url"]))
        assert response.status_code == 400
        assert response.json() == expected
        assert response.headers["x-fal-error-type"] == "request_in_progress"
        assert response.headers["x-fal-request-id"] == handle["request_id"]


ALL_SIZES = [(resolution, ratio) for resolution, ratios in SIZES.items() for ratio in ratios]


@pytest.mark.parametrize(("resolution", "ratio"), ALL_SIZES, ids=str)
async def test_result_points_at_a_real_mp4_of_the_right_size(
    client: httpx.AsyncClient, state: SimulatorState, resolution: Resolution, ratio: AspectRatio
) -> None:
    width, height = SIZES[resolution][ratio]
    state.configure(queue_seconds=0.0, processing_seconds=0.0)
    body = {**I2V_INPUT, "resolution": resolution.value, "aspect_ratio": ratio.value}
    handle = await submit(client, I2V, body)

    response = await client.get(path_of(handle["response_url"]))

    assert response.status_code == 200
    assert response.headers["x-fal-request-id"] == handle["request_id"]
    video = response.json()["video"]
    assert video["url"] == f"{BASE}/media/{resolution.value}-{width}x{height}.mp4"
    assert video["content_type"] == "video/mp4"
    assert video["file_name"] == "output.mp4"
    media = await client.get(path_of(video["url"]))
    assert media.status_code == 200
    assert media.headers["content-type"] == "video/mp4"
    assert media.content[4:8] == b"ftyp"
    assert len(media.content) == video["file_size"]


async def test_auto_aspect_ratio_and_defaults_give_720p_16_9(client: httpx.AsyncClient, state: SimulatorState) -> None:
    state.configure(queue_seconds=0.0, processing_seconds=0.0)
    auto = await submit(client, T2V, {"prompt": "x", "aspect_ratio": "auto"})
    default = await submit(client, T2V, {"prompt": "x"})

    for handle in (auto, default):
        video = (await client.get(path_of(handle["response_url"]))).json()["video"]
        assert video["url"] == f"{BASE}/media/720p-1280x720.mp4"


async def test_media_base_url_config_is_used_for_video_urls(client: httpx.AsyncClient, state: SimulatorState) -> None:
    state.configure(queue_seconds=0.0, processing_seconds=0.0, media_base_url="https://cdn.example/sim/")
    handle = await submit(client)

    video = (await client.get(path_of(handle["response_url"]))).json()["video"]

    assert video["url"] == "https://cdn.example/sim/media/720p-1280x720.mp4"


@pytest.mark.parametrize("seed", [0, 42, 2**31 + 5])
async def test_an_explicit_seed_is_echoed(client: httpx.AsyncClient, state: SimulatorState, seed: int) -> None:
    state.configure(queue_seconds=0.0, processing_seconds=0.0)
    handle = await submit(client, T2V, {"prompt": "x", "seed": seed})

    assert (await client.get(path_of(handle["response_url"]))).json()["seed"] == seed


async def test_random_seed_without_seed_or_with_minus_one(client: httpx.AsyncClient, state: SimulatorState) -> None:
    state.configure(queue_seconds=0.0, processing_seconds=0.0)
    seeds = []
    for body in ({"prompt": "x"}, {"prompt": "x", "seed": -1}, {"prompt": "x"}, {"prompt": "x", "seed": None}):
        handle = await submit(client, T2V, body)
        first = (await client.get(path_of(handle["response_url"]))).json()["seed"]
        again = (await client.get(path_of(handle["response_url"]))).json()["seed"]
        assert first == again, "a job's seed is fixed once drawn"
        seeds.append(first)

    assert all(0 <= s < 2**31 for s in seeds)
    assert len(set(seeds)) > 1


# --- invalid input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "raw"),
    [
        (T2V, b'{"duration": "5"}'),
        (T2V, b'{"prompt": "x", "duration": "3"}'),
        (T2V, b'{"prompt": "x", "resolution": "4k"}'),
        (I2V, b'{"prompt": "x"}'),
        (T2V, b"not json"),
        (T2V, b"[1, 2]"),
        (T2V, b""),
    ],
)
async def test_invalid_input_is_accepted_then_fails_with_422(
    client: httpx.AsyncClient, clock: ManualClock, endpoint: str, raw: bytes
) -> None:
    submitted = await client.post(f"/{endpoint}", content=raw, headers={"content-type": "application/json"})
    assert submitted.status_code == 200
    handle = submitted.json()
    assert handle["status"] == "IN_QUEUE"
    assert (await status_of(client, handle)).json()["status"] == "IN_QUEUE", "fal queues a bad body like any other"

    clock.advance(QUEUE_SECONDS)  # the runner rejects the body as soon as it picks the job up
    status = await status_of(client, handle, logs="1")
    assert status.status_code == 200
    assert status.json()["status"] == "COMPLETED"
    assert status.json()["error"] == "Invalid status code: 422"
    assert status.json()["error_type"] == "validation_error"
    assert status.json()["metrics"] == {}
    assert status.json()["logs"] == []

    result = await client.get(path_of(handle["response_url"]))
    assert result.status_code == 422
    with pytest.raises(InvalidInputError) as exc_info:
        parse_input(ENDPOINTS[endpoint], raw)
    assert result.json() == {"detail": exc_info.value.detail}
    assert result.json()["detail"]


# --- cancel --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("elapsed", [0.0, QUEUE_SECONDS + PROCESSING_SECONDS * 0.5])
async def test_cancel_before_completion(client: httpx.AsyncClient, clock: ManualClock, elapsed: float) -> None:
    handle = await submit(client)
    clock.advance(elapsed)
    logs_before = (await status_of(client, handle, logs="1")).json()["logs"]

    cancelled = await client.put(path_of(handle["cancel_url"]))
    assert cancelled.status_code == 202
    assert cancelled.json() == {"status": "CANCELLATION_REQUESTED"}

    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS)
    status = await status_of(client, handle, logs="1")
    assert status.status_code == 200
    assert status.json()["status"] == "COMPLETED"
    assert status.json()["error"] == "Request was cancelled"
    assert status.json()["error_type"] == "client_cancelled"
    assert status.json()["logs"] == logs_before, "a cancelled job logs nothing more"
    result = await client.get(path_of(handle["response_url"]))
    assert result.status_code == 499
    assert result.json() == {"detail": "Request was cancelled", "error_type": "client_cancelled"}
    again = await client.put(path_of(handle["cancel_url"]))
    assert again.status_code == 400
    assert again.json() == {"status": "ALREADY_COMPLETED"}


async def test_cancel_after_completion_is_refused(client: httpx.AsyncClient, clock: ManualClock) -> None:
    handle = await submit(client)
    clock.advance(QUEUE_SECONDS + PROCESSING_SECONDS)

    response = await client.put(path_of(handle["cancel_url"]))

    assert response.status_code == 400
    assert response.json() == {"status": "ALREADY_COMPLETED"}
    assert (await client.get(path_of(handle["response_url"]))).status_code == 200


# --- unknown endpoints and ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/fal-ai/bytedance/seedance/v1/pro/image-to-video", "/fal-ai/flux/dev", "/fal-ai/bytedance/requests/x"]
)
async def test_submit_to_an_unknown_endpoint_is_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, json={"prompt": "x"})

    assert response.status_code == 404
    assert response.json() == {"detail": "Application not found", "error_type": "not_found"}
    assert response.headers["x-fal-error-type"] == "not_found"
    uuid.UUID(response.headers["x-fal-request-id"])


async def test_unknown_request_ids_and_wrong_apps_are_404(client: httpx.AsyncClient) -> None:
    handle = await submit(client)
    rid = handle["request_id"]
    not_found = {"detail": "Request not found", "error_type": "not_found"}
    calls = [
        ("GET", f"/fal-ai/bytedance/requests/{uuid.uuid4()}/status"),
        ("GET", f"/fal-ai/bytedance/requests/{uuid.uuid4()}"),
        ("PUT", f"/fal-ai/bytedance/requests/{uuid.uuid4()}/cancel"),
        ("GET", f"/fal-ai/flux/requests/{rid}/status"),
        ("GET", f"/other/bytedance/requests/{rid}"),
        ("PUT", f"/fal-ai/flux/requests/{rid}/cancel"),
    ]

    for method, path in calls:
        response = await client.request(method, path)
        assert (response.status_code, response.json()) == (404, not_found), (method, path)
        assert response.headers["x-fal-request-id"] != rid

    assert (await status_of(client, handle)).status_code == 202, "the job itself was left alone"


async def test_unrouted_paths_and_methods_still_answer_fal_shaped_json(client: httpx.AsyncClient) -> None:
    for method, path, status in [
        ("GET", "/nothing-here", 404),
        ("GET", "/fal-ai/bytedance/requests/x/status/stream", 404),
        ("PUT", "/fal-ai/bytedance/requests/x", 405),
        ("DELETE", f"/{T2V}", 405),
    ]:
        response = await client.request(method, path)
        assert response.status_code == status, (method, path)
        assert response.headers["content-type"] == "application/json"
        assert isinstance(response.json()["detail"], str)
        uuid.UUID(response.headers["x-fal-request-id"])


# --- auth ----------------------------------------------------------------------------------------------------------


UNAUTHORIZED = {"detail": "Unauthorized", "error_type": "unauthorized"}


@pytest.mark.parametrize(
    ("fal_key", "authorization", "accepted"),
    [
        (None, None, False),
        (None, "Key anything", True),
        (None, "Key id:secret", True),
        (None, "Bearer a.jwt.token", True),
        (None, "Basic dXNlcjpwYXNz", False),
        (None, "Key ", False),
        (None, "key anything", False),
        (FAL_KEY, None, False),
        (FAL_KEY, f"Key {FAL_KEY}", True),
        (FAL_KEY, "Key wrong", False),
        (FAL_KEY, f"Key {FAL_KEY}x", False),
        (FAL_KEY, f"Bearer {FAL_KEY}", False),
    ],
)
async def test_auth_on_every_queue_call(
    clock: ManualClock, fal_key: str | None, authorization: str | None, accepted: bool
) -> None:
    state = make_state(clock, fal_key=fal_key)
    job = state.submit(TEXT_TO_VIDEO, b'{"prompt": "x"}')
    app_path = f"/fal-ai/bytedance/requests/{job.id}"

    async with sim_client(state, headers={} if authorization is None else {"Authorization": authorization}) as client:
        responses = [
            await client.post(f"/{T2V}", json={"prompt": "x"}),
            await client.get(f"{app_path}/status"),
            await client.get(app_path),
            await client.put(f"{app_path}/cancel"),
        ]

    if accepted:
        assert [r.status_code for r in responses] == [200, 202, 400, 202]
    else:
        assert [(r.status_code, r.json()) for r in responses] == [(401, UNAUTHORIZED)] * 4
        assert all(r.headers["x-fal-error-type"] == "unauthorized" for r in responses)
        assert len(state.stats()["requests"]) == 1, "an unauthorized submit creates no job"


# --- media ---------------------------------------------------------------------------------------------------------


def test_every_size_has_its_bundled_file_and_they_stay_small() -> None:
    media_dir = resources.files("service.simulator") / "media"
    bundled = {entry.name for entry in media_dir.iterdir() if entry.name.endswith(".mp4")}

    assert bundled == MEDIA_NAMES
    assert len(MEDIA_NAMES) == 18
    total = 0
    for name in MEDIA_NAMES:
        data = (media_dir / name).read_bytes()
        assert data[4:8] == b"ftyp", name
        assert data.index(b"moov") < data.index(b"mdat"), f"{name} is not +faststart"
        total += len(data)
    assert total < 400_000


@pytest.mark.parametrize(
    "path", ["/media/nope.mp4", "/media/..%2F..%2Fpyproject.toml", "/media/%2e%2e%2fstate.py", "/media/480p-1x1.mp4"]
)
async def test_unknown_media_is_404(clock: ManualClock, path: str) -> None:
    async with sim_client(make_state(clock), headers={}) as client:
        response = await client.get(path)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"


async def test_media_needs_no_credentials_and_has_a_request_id(clock: ManualClock) -> None:
    async with sim_client(make_state(clock, fal_key=FAL_KEY), headers={}) as client:
        response = await client.get("/media/480p-864x496.mp4")

    assert response.status_code == 200
    assert response.content[4:8] == b"ftyp"
    uuid.UUID(response.headers["x-fal-request-id"])


def log_line(step: int, timestamp: str) -> dict[str, str]:
    return {"message": f"Generating video: step {step}/5", "level": "INFO", "source": "USER", "timestamp": timestamp}


def _urls(handle: dict[str, Any]) -> dict[str, str]:
    return {key: handle[key] for key in ("response_url", "status_url", "cancel_url")}


async def test_finished_jobs_are_forgotten_after_the_retention(
    client: httpx.AsyncClient, state: SimulatorState, clock: ManualClock
) -> None:
    state.configure(queue_seconds=0.0, processing_seconds=1.0, retention_seconds=60.0)
    old = await submit(client)
    clock.advance(62)
    recent = await submit(client)
    assert set(state.stats()["requests"]) == {recent["request_id"]}
    gone = await client.get(path_of(old["status_url"]))
    assert gone.status_code == 404
