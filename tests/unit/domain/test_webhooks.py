"""The pure rules of webhook delivery: fal's payload, the ids, what is retried, and when."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from service.domain.jobs import Job, JobMode, JobState, Outcome, cancelled_fields, failed_fields
from service.domain.webhooks import (
    AttemptResult,
    classify,
    delivery_id,
    encode_payload,
    fal_payload,
    fal_signed_content,
    next_delay,
    parse_retry_after,
    parse_schedule,
)

SCHEDULE = (5.0, 300.0, 1800.0)


def _job(**values: Any) -> Job:
    base = Job(
        request_id="3f1c0d52-8a7e-4c1b-9b8e-0a6f5d4c3b2a",
        tenant_id="acme",
        endpoint_id="fal-ai/bytedance/seedance/v1.5/pro/text-to-video",
        mode=JobMode.QUEUE,
        input={"prompt": "x"},
        created_at=1.0,
        state=JobState.COMPLETED,
    )
    for name, value in values.items():
        setattr(base, name, value)
    return base


def test_a_success_is_fals_ok_payload_under_the_gateways_id() -> None:
    result = {"video": {"url": "https://x/v.mp4"}, "seed": 7}
    assert fal_payload(_job(outcome=Outcome.OK, result=result)) == {
        "request_id": "3f1c0d52-8a7e-4c1b-9b8e-0a6f5d4c3b2a",
        "gateway_request_id": "3f1c0d52-8a7e-4c1b-9b8e-0a6f5d4c3b2a",
        "status": "OK",
        "payload": result,
    }


def test_a_failure_is_fals_error_payload_with_the_error_body() -> None:
    job = _job(**failed_fields(422, "Invalid status code: 422", "validation_error", {"detail": [{"loc": ["body"]}]}))
    payload = fal_payload(job)
    assert payload["status"] == "ERROR"
    assert payload["error"] == "Invalid status code: 422"
    assert payload["payload"] == {"detail": [{"loc": ["body"]}]}


def test_a_cancellation_is_an_error_payload() -> None:
    payload = fal_payload(_job(**cancelled_fields()))
    assert (payload["status"], payload["payload"]["error_type"]) == ("ERROR", "client_cancelled")


def test_an_unserialisable_payload_becomes_payload_error() -> None:
    body = json.loads(encode_payload({"request_id": "r", "status": "OK", "payload": {"n": math.nan}}))
    assert body["payload"] is None
    assert "could not be serialised" in body["payload_error"]
    assert body["status"] == "OK"


def test_delivery_ids_are_stable_per_request_and_distinct_between_requests() -> None:
    assert delivery_id("a") == delivery_id("a")
    assert delivery_id("a") != delivery_id("b")
    assert delivery_id("a").startswith("msg_")


def test_fals_signed_content() -> None:
    assert fal_signed_content("r", "u", 12, b"{}") == (
        b"r\nu\n12\n44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )


@pytest.mark.parametrize(
    ("status", "result"),
    [
        (None, AttemptResult.RETRY),
        (200, AttemptResult.DELIVERED),
        (204, AttemptResult.DELIVERED),
        (301, AttemptResult.FINAL),
        (400, AttemptResult.FINAL),
        (404, AttemptResult.FINAL),
        (408, AttemptResult.RETRY),
        (410, AttemptResult.FINAL),
        (425, AttemptResult.RETRY),
        (429, AttemptResult.RETRY),
        (500, AttemptResult.RETRY),
        (503, AttemptResult.RETRY),
    ],
)
def test_what_is_retried(status: int | None, result: AttemptResult) -> None:
    assert classify(status) is result


def test_the_schedule_is_followed_with_jitter_and_then_used_up() -> None:
    assert next_delay(1, SCHEDULE, retry_after_cap=60, rand=lambda: 0.5) == 5.0
    assert next_delay(2, SCHEDULE, retry_after_cap=60, rand=lambda: 0.0) == pytest.approx(270.0)
    assert next_delay(3, SCHEDULE, retry_after_cap=60, rand=lambda: 1.0) == pytest.approx(1980.0)
    assert next_delay(4, SCHEDULE, retry_after_cap=60) is None


def test_a_longer_retry_after_wins_up_to_its_cap() -> None:
    assert next_delay(1, SCHEDULE, retry_after=30, retry_after_cap=60, rand=lambda: 0.5) == 30
    assert next_delay(1, SCHEDULE, retry_after=3600, retry_after_cap=60, rand=lambda: 0.5) == 60
    assert next_delay(1, SCHEDULE, retry_after=1, retry_after_cap=60, rand=lambda: 0.5) == 5.0


@pytest.mark.parametrize(
    ("value", "seconds"), [("30", 30.0), (" 2.5 ", 2.5), (None, None), ("soon", None), ("-1", None)]
)
def test_retry_after_in_seconds(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_schedules_parse_and_bad_ones_are_refused() -> None:
    assert parse_schedule("5, 300,1800") == SCHEDULE
    with pytest.raises(ValueError, match="at least one"):
        parse_schedule(" , ")
